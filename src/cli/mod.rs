//! The `hookbus` command line: flags (generated for every setting), the subcommands, and
//! what each calls in the library.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use hookbus::config::{Config, ConfigOverrides};

#[derive(Parser)]
#[command(name = "hookbus", version, about = "Webhook delivery: signed, retried, recorded.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// `text` for people, `json` (one object per line) for log shippers.
    #[arg(long, global = true, env = "HOOKBUS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// `env_logger` at INFO unless `RUST_LOG` says otherwise, in the chosen format.
fn init_logging(format: LogFormat) {
    let mut builder = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if let LogFormat::Json = format {
        builder.format(|buf, record| {
            use std::io::Write as _;
            let line = serde_json::json!({
                "ts": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "level": record.level().as_str(),
                "target": record.target(),
                "message": record.args().to_string(),
            });
            writeln!(buf, "{line}")
        });
    }
    builder.init();
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (migrations run at start-up).
    Serve(ServeArgs),
    /// Run pending database migrations and exit.
    Migrate(CommonArgs),
    /// Print the effective settings and where each came from (flag, environment, file,
    /// default); secrets are redacted.
    Config(ServeArgs),
}

/// Adds a `--flag` for every setting without one of its own, generated from `Config`, so
/// the flags cannot drift from the settings.
fn with_setting_flags(command: clap::Command) -> clap::Command {
    hookbus::config::generated_flags().into_iter().fold(command, |command, (name, default)| {
        let flag = name.replace('_', "-");
        command.arg(
            clap::Arg::new(name.clone())
                .long(flag)
                .value_name("VALUE")
                .help(format!("the `{name}` setting (default {default})"))
                .help_heading("Settings"),
        )
    })
}

/// The generated flags' values, by setting name.
fn setting_flags(matches: &clap::ArgMatches) -> std::collections::BTreeMap<String, String> {
    hookbus::config::generated_flags()
        .into_iter()
        // `migrate` has none of them.
        .filter_map(|(name, _)| Some((name.clone(), matches.try_get_one::<String>(&name).ok()??.clone())))
        .collect()
}

#[derive(Args)]
struct CommonArgs {
    /// TOML config file; its keys are the settings listed in the README.
    #[arg(long, env = "HOOKBUS_CONFIG")]
    config: Option<PathBuf>,
    /// `postgres://…`, `sqlite://path` or `sqlite::memory:` (default: SQLite in the data dir).
    #[arg(long)]
    database_url: Option<String>,
    /// Directory for the SQLite file and the generated admin token.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long)]
    bind: Option<String>,
    /// Allow http:// and private/loopback targets. Never in production.
    #[arg(long)]
    dev: bool,
}

fn overrides(
    common: &CommonArgs,
    bind: Option<String>,
    dev: bool,
    settings: BTreeMap<String, String>,
) -> ConfigOverrides {
    ConfigOverrides {
        bind,
        database_url: common.database_url.clone(),
        data_dir: common.data_dir.clone(),
        dev: dev.then_some(true),
        settings,
    }
}

fn load(
    common: CommonArgs,
    bind: Option<String>,
    dev: bool,
    settings: BTreeMap<String, String>,
) -> Result<Config, hookbus::config::ConfigError> {
    Config::load(common.config.as_deref(), overrides(&common, bind, dev, settings))
}

/// Parses the command line and runs the subcommand; errors are logged with their causes.
pub async fn run() -> ExitCode {
    let command =
        Cli::command().mut_subcommand("serve", with_setting_flags).mut_subcommand("config", with_setting_flags);
    let matches = command.get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    init_logging(cli.log_format);
    let settings = matches.subcommand().map(|(_, sub)| setting_flags(sub)).unwrap_or_default();
    let result = match cli.command {
        Command::Serve(args) => serve(args, settings).await,
        Command::Migrate(args) => migrate(args).await,
        Command::Config(args) => show_config(args, settings),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let mut message = error.to_string();
            let mut source = error.source();
            while let Some(cause) = source {
                message.push_str(&format!(": {cause}"));
                source = cause.source();
            }
            log::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs, settings: BTreeMap<String, String>) -> Result<(), Box<dyn std::error::Error>> {
    let config = load(args.common, args.bind, args.dev, settings)?;
    let app = hookbus::Application::build(config).await?;
    app.run().await?;
    Ok(())
}

async fn migrate(args: CommonArgs) -> Result<(), Box<dyn std::error::Error>> {
    let config = load(args, None, false, BTreeMap::new())?;
    hookbus::store::Store::open(&config.database(), 1).await?;
    log::info!("migrations are up to date");
    Ok(())
}

fn show_config(args: ServeArgs, settings: BTreeMap<String, String>) -> Result<(), Box<dyn std::error::Error>> {
    let overrides = overrides(&args.common, args.bind, args.dev, settings);
    let file = args.common.config.as_deref();
    let config = Config::load(file, overrides.clone())?;
    for (name, value, origin) in config.origins(file, &overrides) {
        println!("{name} = {value}  # {origin}");
    }
    Ok(())
}
