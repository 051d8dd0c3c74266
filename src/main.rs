//! The `clearance` command line: serve, check-config, demo, records import, directory import,
//! report, audit verify, evidence export and evidence at.

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
    /// The directory: who people are and who answers for them.
    Directory {
        #[command(subcommand)]
        command: DirectoryCommand,
    },
    /// Print the OpenAPI 3.1 description of the HTTP API (docs/openapi.json holds a copy).
    Openapi,
    /// Evidence for auditors.
    Evidence {
        #[command(subcommand)]
        command: EvidenceCommand,
    },
}

#[derive(Subcommand)]
enum DirectoryCommand {
    /// Import directory entries (people, managers, sponsors) from a CSV file.
    ///
    /// Columns: user_name (required), and optionally active (true/false), user_type, manager,
    /// sponsor, employee_number, department, start_date (YYYY-MM-DD), display_name, email.
    /// Every row is checked first; if any is invalid nothing is written. Exit 0 when done,
    /// 1 when rows are invalid or the store fails, 2 when the file or configuration cannot be read.
    Import {
        /// The CSV file (header line required).
        file: PathBuf,
        #[arg(long, short, env = "CLEARANCE_CONFIG")]
        config: PathBuf,
        /// Check the file and report, write nothing (entries on file are not consulted).
        #[arg(long)]
        dry_run: bool,
        /// Overwrite entries provisioned over SCIM too (refused by default: SCIM owns them).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum EvidenceCommand {
    /// Export training records, acceptances, denials, cases, actions, exemptions, checklists
    /// and the access-before-agreement report as CSV and JSON, with a manifest of SHA-256
    /// hashes and the audit chain's head. Exit 0 when written, 1 when the store or the files
    /// fail, 2 on bad arguments (a non-empty --out included) or configuration.
    Export {
        #[arg(long, short, env = "CLEARANCE_CONFIG")]
        config: PathBuf,
        /// A new or empty directory to write into.
        #[arg(long)]
        out: PathBuf,
        /// Only events at or after this date (YYYY-MM-DD) or RFC 3339 time.
        #[arg(long)]
        from: Option<String>,
        /// Only events at or before this date (YYYY-MM-DD) or RFC 3339 time; checklists are
        /// evaluated as of then.
        #[arg(long)]
        to: Option<String>,
        /// Only these people (repeat the flag); everyone known by default.
        #[arg(long)]
        subject: Vec<String>,
    },
    /// Whether a person was compliant at a given time, and on which records.
    /// Exit 0 with the answer (compliant or not), 1 when the store fails, 2 on bad arguments.
    At {
        #[arg(long, short, env = "CLEARANCE_CONFIG")]
        config: PathBuf,
        #[arg(long)]
        subject: String,
        /// A date (YYYY-MM-DD, meaning 00:00 UTC) or an RFC 3339 time.
        #[arg(long)]
        time: String,
        /// `text` (default) or `json`.
        #[arg(long, default_value = "text")]
        format: String,
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
                for relaxed in s.relaxations() {
                    eprintln!("{}: warning: {relaxed}", config.display());
                }
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
            // Kept until the server stops, so that buffered spans are sent.
            let _telemetry = clearance::telemetry::init_with_traces(
                settings.log_format,
                settings.log_filter.as_deref(),
                settings.traces.as_ref(),
            );
            let sha256 = std::fs::read(&config)
                .map(|b| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&b)))
                .unwrap_or_default();
            run(clearance::serve(
                settings,
                (config.display().to_string(), sha256),
            ))
        }
        Command::Openapi => match clearance::http::openapi::to_pretty_json() {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: the OpenAPI document: {e}");
                ExitCode::FAILURE
            }
        },
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
        Command::Directory {
            command:
                DirectoryCommand::Import {
                    file,
                    config,
                    dry_run,
                    force,
                },
        } => import_directory(&file, &config, dry_run, force),
        Command::Evidence {
            command:
                EvidenceCommand::Export {
                    config,
                    out,
                    from,
                    to,
                    subject,
                },
        } => evidence_export(&config, &out, from.as_deref(), to.as_deref(), &subject),
        Command::Evidence {
            command:
                EvidenceCommand::At {
                    config,
                    subject,
                    time,
                    format,
                },
        } => evidence_at(&config, &subject, &time, &format),
    }
}

fn load(config: &Path) -> Result<clearance::config::Settings, ExitCode> {
    clearance::config::load(config).map_err(|e| {
        eprintln!("{}: {e}", config.display());
        ExitCode::from(2)
    })
}

/// The configuration and an input file: settings, the file's bytes, its path as shown, and its
/// name (for the audit trail's actor and record evidence).
fn load_input(
    config: &Path,
    file: &Path,
) -> Result<(clearance::config::Settings, Vec<u8>, String, String), ExitCode> {
    let settings = load(config)?;
    let bytes = std::fs::read(file).map_err(|e| {
        eprintln!("cannot read {}: {e}", file.display());
        ExitCode::from(2)
    })?;
    let shown = file.display().to_string();
    let name = file
        .file_name()
        .map_or_else(|| shown.clone(), |n| n.to_string_lossy().into_owned());
    Ok((settings, bytes, shown, name))
}

/// A `--from`/`--to`/`--time` value, or the message naming the flag.
fn time_flag(
    flag: &str,
    text: Option<&str>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, ExitCode> {
    match text {
        None => Ok(None),
        Some(text) => match clearance::evidence::parse_time(text) {
            Some(t) => Ok(Some(t)),
            None => {
                eprintln!("{}", clearance::evidence::time_hint(flag, text));
                Err(ExitCode::from(2))
            }
        },
    }
}

fn subject_flag(text: &str) -> Result<clearance::domain::SubjectKey, ExitCode> {
    clearance::domain::SubjectKey::parse(text).map_err(|e| {
        eprintln!("--subject {text:?}: {e}");
        ExitCode::from(2)
    })
}

/// `clearance directory import`.
fn import_directory(file: &Path, config: &Path, dry_run: bool, force: bool) -> ExitCode {
    use clearance::directory_import as dir;
    let (settings, bytes, shown, name) = match load_input(config, file) {
        Ok(input) => input,
        Err(code) => return code,
    };
    let rows = match dir::parse(&bytes, chrono::Utc::now()) {
        Ok(rows) => rows,
        Err(problems) => {
            eprint!("{}", dir::problem_report(&shown, &problems));
            return ExitCode::FAILURE;
        }
    };
    if dry_run {
        println!(
            "{shown}: {} valid row(s); nothing written (--dry-run)",
            rows.len()
        );
        return ExitCode::SUCCESS;
    }
    let actor = format!("csv:{name}");
    let written = actix_web::rt::System::new().block_on(async {
        let store = clearance::redis_store(&settings)?;
        anyhow::Ok(dir::write(store.as_ref(), &rows, &actor, force).await)
    });
    match written {
        Err(e) => {
            eprintln!("{}: {e:#}", config.display());
            ExitCode::from(2)
        }
        Ok(Ok(w)) => {
            println!(
                "{shown}: {} created, {} updated, {} unchanged",
                w.created, w.updated, w.unchanged
            );
            ExitCode::SUCCESS
        }
        Ok(Err(dir::ImportError::Refused(problems))) => {
            eprint!("{}", dir::problem_report(&shown, &problems));
            ExitCode::FAILURE
        }
        Ok(Err(dir::ImportError::Store(e))) => {
            eprintln!(
                "{shown}: {e}; before that {} created, {} updated. Importing the file again is safe.",
                e.written.created, e.written.updated
            );
            ExitCode::FAILURE
        }
    }
}

/// `clearance evidence export`.
fn evidence_export(
    config: &Path,
    out: &Path,
    from: Option<&str>,
    to: Option<&str>,
    subjects: &[String],
) -> ExitCode {
    use clearance::evidence;
    let (from, to) = match (time_flag("--from", from), time_flag("--to", to)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        eprintln!("--from {} is after --to {}", f.to_rfc3339(), t.to_rfc3339());
        return ExitCode::from(2);
    }
    let mut keys = Vec::new();
    for s in subjects {
        match subject_flag(s) {
            Ok(k) => keys.push(k),
            Err(code) => return code,
        }
    }
    // Refuse a non-empty directory before reading anything.
    if std::fs::read_dir(out).is_ok_and(|mut d| d.next().is_some()) {
        eprintln!(
            "--out: {}",
            evidence::ExportDirError::NotEmpty(out.display().to_string())
        );
        return ExitCode::from(2);
    }
    let settings = match load(config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let config_sha256 = std::fs::read(config)
        .map(|b| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&b)))
        .ok();
    let filter = evidence::Filter {
        from,
        to,
        subjects: keys,
    };
    let exported = actix_web::rt::System::new().block_on(async {
        let store = clearance::redis_store(&settings)?;
        anyhow::Ok(
            evidence::export(
                &settings,
                store.as_ref(),
                &filter,
                config_sha256,
                chrono::Utc::now(),
            )
            .await?,
        )
    });
    let export = match exported {
        Ok(e) => e,
        Err(e) => {
            eprintln!("clearance: the evidence cannot be read: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let written = evidence::files(&export).and_then(|files| {
        evidence::write_dir(out, &files)?;
        Ok(files)
    });
    match written {
        Ok(files) => {
            println!(
                "evidence for {} people written to {}:",
                export.people.len(),
                out.display()
            );
            for f in &files {
                println!("  {:<32} {:>6} rows  sha256 {}", f.name, f.rows, f.sha256);
            }
            if !export.chain.verified {
                println!(
                    "WARNING: the audit chain does not verify: {}",
                    export.chain.problem.as_deref().unwrap_or("unknown problem")
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("clearance: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `clearance evidence at`.
fn evidence_at(config: &Path, subject: &str, time: &str, format: &str) -> ExitCode {
    use clearance::evidence;
    let time = match time_flag("--time", Some(time)) {
        Ok(Some(t)) => t,
        Ok(None) => return ExitCode::from(2),
        Err(code) => return code,
    };
    let subject = match subject_flag(subject) {
        Ok(s) => s,
        Err(code) => return code,
    };
    if format != "text" && format != "json" {
        eprintln!("--format {format:?}: use text or json");
        return ExitCode::from(2);
    }
    let settings = match load(config) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let answer = actix_web::rt::System::new().block_on(async {
        let store = clearance::redis_store(&settings)?;
        anyhow::Ok(evidence::at(&settings, store.as_ref(), &subject, time).await?)
    });
    let answer = match answer {
        Ok(a) => a,
        Err(e) => {
            eprintln!("clearance: the evidence cannot be read: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if format == "json" {
        match serde_json::to_string_pretty(&answer) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("clearance: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", evidence::render_text(&answer));
    }
    ExitCode::SUCCESS
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
        Ok(ChainCheck::Intact { entries, chains }) => {
            println!(
                "audit chain intact: {entries} entries in {chains} chains, every link verified"
            );
            ExitCode::SUCCESS
        }
        Ok(ChainCheck::Broken { chain, at }) => {
            println!("audit chain BROKEN in chain {chain} at {at}");
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
    let (settings, bytes, shown, name) = match load_input(config, file) {
        Ok(input) => input,
        Err(code) => return code,
    };
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
        let written = import::write(store.as_ref(), &parsed.rows).await;
        // People the import made compliant have their open cases closed, as with every feed
        // (also those written before a failure).
        let done = match &written {
            Ok(written) => written,
            Err(e) => &e.written,
        };
        let closed =
            import::settle_cases(&settings, store.as_ref(), done, chrono::Utc::now()).await;
        anyhow::Ok(written.map(|w| (w, closed)))
    });
    match written {
        Err(e) => {
            eprintln!("{}: {e:#}", config.display());
            ExitCode::from(2)
        }
        Ok(Ok((written, closed))) => {
            println!("{}", import::summary(&shown, &parsed, &written));
            if closed > 0 {
                println!("{shown}: {closed} open case(s) closed: the person is compliant now");
            }
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
