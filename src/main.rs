//! The `clearance` command line: serve, check-config, demo.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "clearance",
    version,
    about = "Admits people only while their security induction is current"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gate with a configuration file.
    Serve {
        /// Path of the TOML configuration.
        #[arg(long, short, env = "CLEARANCE_CONFIG")]
        config: PathBuf,
    },
    /// Validate a configuration file (and the environment overrides) without starting anything.
    CheckConfig {
        #[arg(long, short, env = "CLEARANCE_CONFIG")]
        config: PathBuf,
    },
    /// Run a self-contained demo on loopback: gate, development sign-in provider, sample app.
    Demo {
        /// Port for the gate (the URL you open).
        #[arg(long, default_value_t = 4180)]
        port: u16,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::CheckConfig { config } => match clearance::config::load(&config) {
            Ok(s) => {
                println!(
                    "{}: OK ({} requirements, {} routes, listening on {}, issuer {})",
                    config.display(),
                    s.policy.requirements.len(),
                    s.routes.routes().len(),
                    s.listen,
                    s.oidc.issuer
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{}: {e}", config.display());
                ExitCode::from(2)
            }
        },
        Command::Serve { config } => {
            let settings = match clearance::config::load(&config) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("{}: {e}", config.display());
                    return ExitCode::from(2);
                }
            };
            clearance::telemetry::init(settings.log_format, settings.log_filter.as_deref());
            run(clearance::serve(settings))
        }
        Command::Demo { port } => {
            clearance::telemetry::init(
                clearance::config::settings_types::LogFormat::Pretty,
                Some("warn,clearance=info"),
            );
            run(clearance::demo::run(port))
        }
    }
}

fn run(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    match actix_web::rt::System::new().block_on(fut) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("clearance: {e:#}");
            ExitCode::FAILURE
        }
    }
}
