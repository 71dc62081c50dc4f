//! The `hookbus` command: parse flags, load the config, call the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use hookbus::config::{Config, ConfigOverrides};

// The delivery loop allocates small, short-lived buffers on one thread and frees them on
// another; jemalloc does that with much less CPU than glibc's malloc, without mimalloc's
// larger footprint (BENCHMARKS.md). The library leaves the allocator to the application.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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

fn load(common: CommonArgs, bind: Option<String>, dev: bool) -> Result<Config, hookbus::config::ConfigError> {
    let overrides = ConfigOverrides {
        bind,
        database_url: common.database_url,
        data_dir: common.data_dir,
        dev: dev.then_some(true),
    };
    Config::load(common.config.as_deref(), overrides)
}

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Migrate(args) => migrate(args).await,
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

async fn serve(args: ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let config = load(args.common, args.bind, args.dev)?;
    let app = hookbus::Application::build(config).await?;
    app.run().await?;
    Ok(())
}

async fn migrate(args: CommonArgs) -> Result<(), Box<dyn std::error::Error>> {
    let config = load(args, None, false)?;
    hookbus::store::Store::open(&config.database(), 1).await?;
    log::info!("migrations are up to date");
    Ok(())
}
