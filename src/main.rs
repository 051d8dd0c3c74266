//! The `clearance` command line: serve, check-config, demo, records import, report, audit verify.

use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
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
    /// Work with completion records.
    Records {
        #[command(subcommand)]
        command: RecordsCommand,
    },
    /// Reports over everyone Clearance knows.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// The tamper-evident audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check every link of the audit chain; name the first entry edited, removed or reordered.
    /// Exit 0 when intact, 1 when broken, 2 when it cannot be read.
    Verify {
        #[arg(long, short, env = "CLEARANCE_CONFIG")]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum ReportCommand {
    /// Who would be blocked on a date, and why, from the records on file now.
    WouldBlock {
        /// The date (YYYY-MM-DD, meaning 00:00 UTC) or RFC 3339 time to evaluate at.
        #[arg(long)]
        at: String,
        #[arg(long, short, env = "CLEARANCE_CONFIG")]
        config: PathBuf,
        /// `text` (default) or `json`.
        #[arg(long, default_value = "text")]
        format: String,
    },
}

#[derive(Subcommand)]
enum RecordsCommand {
    /// Import past completions from a CSV file.
    ///
    /// Columns: subject, requirement, version, completed_at (RFC 3339 or YYYY-MM-DD), and
    /// optionally expires_at, source (default csv) and evidence_<name>. Every row is checked
    /// first; if any is invalid nothing is written. Importing the same file again changes nothing.
    Import {
        /// The CSV file (header line required).
        file: PathBuf,
        /// Path of the TOML configuration (for Redis and the requirements).
        #[arg(long, short, env = "CLEARANCE_CONFIG")]
        config: PathBuf,
        /// Write the valid rows even if some are invalid (those are reported and skipped).
        #[arg(long)]
        skip_invalid: bool,
        /// Check the file and report, write nothing.
        #[arg(long)]
        dry_run: bool,
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
            let sha256 = std::fs::read(&config)
                .map(|b| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&b)))
                .unwrap_or_default();
            run(clearance::serve(
                settings,
                (config.display().to_string(), sha256),
            ))
        }
        Command::Demo { port } => {
            clearance::telemetry::init(
                clearance::config::settings_types::LogFormat::Pretty,
                Some("warn,clearance=info"),
            );
            run(clearance::demo::run(port))
        }
        Command::Records {
            command:
                RecordsCommand::Import {
                    file,
                    config,
                    skip_invalid,
                    dry_run,
                },
        } => import_records(&file, &config, skip_invalid, dry_run),
        Command::Report {
            command: ReportCommand::WouldBlock { at, config, format },
        } => would_block(&at, &config, &format),
        Command::Audit {
            command: AuditCommand::Verify { config },
        } => audit_verify(&config),
    }
}

/// `clearance audit verify`.
fn audit_verify(config: &Path) -> ExitCode {
    use clearance::evidence::{ChainCheck, verify_chain};
    let settings = match clearance::config::load(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}: {e}", config.display());
            return ExitCode::from(2);
        }
    };
    let checked = actix_web::rt::System::new().block_on(async {
        let store = clearance::redis_store(&settings)?;
        anyhow::Ok(verify_chain(store.as_ref(), &settings.followup.audit_key).await?)
    });
    match checked {
        Ok(ChainCheck::Intact { entries }) => {
            println!("audit chain intact: {entries} entries, every link verified");
            ExitCode::SUCCESS
        }
        Ok(ChainCheck::Broken(b)) => {
            println!("audit chain BROKEN at {b}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("clearance: the audit chain cannot be read: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `clearance report would-block`: exit 0 with the report, 2 on bad arguments or configuration.
fn would_block(at: &str, config: &Path, format: &str) -> ExitCode {
    let when = chrono::NaiveDate::parse_from_str(at, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .or_else(|| {
            chrono::DateTime::parse_from_rfc3339(at)
                .ok()
                .map(|t| t.with_timezone(&chrono::Utc))
        });
    let Some(when) = when else {
        eprintln!("--at {at:?}: use a date like 2026-12-31 or an RFC 3339 time");
        return ExitCode::from(2);
    };
    if format != "text" && format != "json" {
        eprintln!("--format {format:?}: use text or json");
        return ExitCode::from(2);
    }
    let settings = match clearance::config::load(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}: {e}", config.display());
            return ExitCode::from(2);
        }
    };
    let rows = actix_web::rt::System::new().block_on(async {
        let store = clearance::redis_store(&settings)?;
        anyhow::Ok(clearance::report::would_block(&settings, store.as_ref(), when).await?)
    });
    match rows {
        Ok(rows) if format == "json" => match serde_json::to_string_pretty(&rows) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("clearance: {e}");
                ExitCode::FAILURE
            }
        },
        Ok(rows) => {
            print!("{}", clearance::report::render_text(&rows, when));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("clearance: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `clearance records import`: exit 0 when done, 1 when rows are invalid (without
/// `--skip-invalid`) or the store fails, 2 when the file or the configuration cannot be read.
fn import_records(file: &Path, config: &Path, skip_invalid: bool, dry_run: bool) -> ExitCode {
    use clearance::import;
    let settings = match clearance::config::load(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}: {e}", config.display());
            return ExitCode::from(2);
        }
    };
    let bytes = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("cannot read {}: {e}", file.display());
            return ExitCode::from(2);
        }
    };
    let shown = file.display().to_string();
    let name = file
        .file_name()
        .map_or_else(|| shown.clone(), |n| n.to_string_lossy().into_owned());
    let parsed = match import::parse(&bytes, &name, &settings.policy, chrono::Utc::now()) {
        Ok(p) => p,
        Err(problems) => {
            eprintln!("{shown}: cannot be imported, nothing was written:");
            for p in problems {
                eprintln!("  {p}");
            }
            return ExitCode::FAILURE;
        }
    };
    for note in import::duplicate_notes(&parsed) {
        println!("{shown}: {note}");
    }
    if !parsed.problems.is_empty() {
        eprint!("{}", import::problem_report(&shown, &parsed));
        if !skip_invalid {
            match parsed.rows.len() {
                0 => eprintln!("Nothing was written: no row is valid."),
                n => eprintln!(
                    "Nothing was written. Fix these rows, or pass --skip-invalid to import the {n} valid one(s)."
                ),
            }
            return ExitCode::FAILURE;
        }
        eprintln!(
            "Skipping {} invalid row(s) (--skip-invalid).",
            parsed.invalid_lines.len()
        );
    }
    if dry_run {
        println!("{}", import::dry_run_summary(&shown, &parsed));
        return ExitCode::SUCCESS;
    }
    // The Redis connection manager spawns onto the runtime, so the store is made inside it.
    let written = actix_web::rt::System::new().block_on(async {
        let store = clearance::redis_store(&settings)?;
        anyhow::Ok(import::write(store.as_ref(), &parsed.rows).await)
    });
    match written {
        Err(e) => {
            eprintln!("{}: {e:#}", config.display());
            ExitCode::from(2)
        }
        Ok(Ok(written)) => {
            println!("{}", import::summary(&shown, &parsed, &written));
            ExitCode::SUCCESS
        }
        Ok(Err(e)) => {
            eprintln!(
                "{shown}: {e}; before that {} new, {} already imported. \
                 Importing the file again is safe: rows already imported are not written twice.",
                e.written.new, e.written.already_imported
            );
            ExitCode::FAILURE
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
