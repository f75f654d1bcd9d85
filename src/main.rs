//! The `geowebdns` binary: parses the command line, sets up logging and hands
//! over to the library.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = geowebdns::cli::Cli::parse();
    geowebdns::cli::init_tracing(&cli.log, cli.log_format);
    match geowebdns::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
