//! The `hookbus` command line: flags (generated for every setting), the subcommands, and
//! what each calls in the library. The server's commands are here; `admin` talks to a
//! running server over its API, `listen` is a receiver for people building an endpoint.

mod admin;
mod client;
mod listen;
mod progress;

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

/// `env_logger` at `level` unless `RUST_LOG` says otherwise, in the chosen format.
fn init_logging(format: LogFormat, level: &str) {
    let mut builder = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level));
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
    /// List, create, show, update, delete and test webhooks on a server.
    Webhooks {
        #[command(subcommand)]
        command: admin::WebhooksCommand,
        #[command(flatten)]
        api: client::ApiArgs,
    },
    /// Publish an event.
    Publish {
        #[command(flatten)]
        args: admin::PublishArgs,
        #[command(flatten)]
        api: client::ApiArgs,
    },
    /// List and show deliveries, and send one again.
    Deliveries {
        #[command(subcommand)]
        command: admin::DeliveriesCommand,
        #[command(flatten)]
        api: client::ApiArgs,
    },
    /// Requeue a webhook's failed (or other) deliveries since a time, following the progress.
    Replay {
        #[command(flatten)]
        args: admin::ReplayArgs,
        #[command(flatten)]
        api: client::ApiArgs,
    },
    /// Receive deliveries on this machine: print them, check their signatures, forward them.
    Listen(listen::ListenArgs),
    /// Print a shell completion script: `hookbus completions bash > /etc/bash_completion.d/hookbus`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
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

/// Parses the command line and runs the subcommand (see [`Outcome`] for how errors show).
pub async fn run() -> ExitCode {
    let command =
        Cli::command().mut_subcommand("serve", with_setting_flags).mut_subcommand("config", with_setting_flags);
    let matches = command.get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // The server's commands log what they do; the client commands print their answers, and
    // only warnings go to the log.
    let level = match cli.command {
        Command::Serve(_) | Command::Migrate(_) | Command::Config(_) => "info",
        _ => "warn",
    };
    init_logging(cli.log_format, level);
    let settings = matches.subcommand().map(|(_, sub)| setting_flags(sub)).unwrap_or_default();
    let outcome = match cli.command {
        Command::Serve(args) => Outcome::Server(serve(args, settings).await),
        Command::Migrate(args) => Outcome::Server(migrate(args).await),
        Command::Config(args) => Outcome::Server(show_config(args, settings)),
        Command::Listen(args) => Outcome::Server(listen::listen(args).await),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "hookbus", &mut std::io::stdout());
            Outcome::Client(Ok(()))
        }
        Command::Webhooks { command, api } => Outcome::Client(admin::webhooks(&api, command).await),
        Command::Publish { args, api } => Outcome::Client(admin::publish(&api, args).await),
        Command::Deliveries { command, api } => Outcome::Client(admin::deliveries(&api, command).await),
        Command::Replay { args, api } => Outcome::Client(admin::replay(&api, args).await),
    };
    match outcome {
        Outcome::Client(Ok(())) | Outcome::Server(Ok(())) => ExitCode::SUCCESS,
        Outcome::Client(Err(error)) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
        Outcome::Server(Err(error)) => {
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

/// How a command ended. A client command's error is the API's answer (or why it could not be
/// asked), printed once as it is; a server command's is logged with its causes.
enum Outcome {
    Client(Result<(), client::ClientError>),
    Server(Result<(), Box<dyn std::error::Error>>),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// clap's own checks of the command tree (unique names, valid defaults), which it
    /// otherwise makes only when that subcommand is first used.
    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command()
            .mut_subcommand("serve", with_setting_flags)
            .mut_subcommand("config", with_setting_flags)
            .debug_assert();
    }
}
