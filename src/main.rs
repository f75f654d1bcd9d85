//! The `geowebdns` binary: parses the command line, sets up logging and hands
//! over to the library.

use clap::Parser;
use std::time::Duration;

fn main() -> std::process::ExitCode {
    let cli = geowebdns::cli::Cli::parse();
    geowebdns::cli::init_tracing(&cli.log, cli.log_format);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let geowebdns::cli::Command::Serve(args) = &cli.command {
        if args.busy_poll_us > 0 {
            if let Err(e) = geowebdns::busy_poll::install(Duration::from_micros(args.busy_poll_us)) {
                eprintln!("error: --busy-poll-us: {e}");
                return std::process::ExitCode::FAILURE;
            }
            builder.on_thread_park(geowebdns::busy_poll::before_park);
        }
    }
    let runtime = match builder.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(geowebdns::cli::run(cli));
    // Work still running on blocking threads (a request cut off by the
    // shutdown grace period) must not hold up the exit.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
