//! `sim-runner completions SHELL` and `sim-runner man`: the shell
//! completion script and the manual page, both generated from the clap
//! definition in [`crate::cli`], so they never fall behind it.

use crate::cli::Cli;
use crate::exit;
use clap::CommandFactory;
use std::io::Write;

/// Write the completion script for `shell`; returns the exit status.
pub fn completions(shell: clap_complete::Shell, out: &mut dyn Write) -> u8 {
    let mut cmd = Cli::command();
    // Into memory first: clap_complete panics when its writer fails (a
    // closed pipe, a full disk); the caller's output guard reports those.
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "sim-runner", &mut script);
    let _ = out.write_all(&script).and_then(|()| out.flush());
    exit::OK
}

/// Write the manual page (roff): the main page, then one section per
/// subcommand; returns the exit status.
pub fn man(out: &mut dyn Write) -> u8 {
    let cmd = Cli::command();
    let mut page = Vec::new();
    if let Err(e) = man_page(&cmd, &mut page) {
        // Rendering into memory cannot fail but for a bug; say so plainly.
        let _ = writeln!(out, ".\\\" cannot render the manual page: {e}");
        return exit::FAILED;
    }
    let _ = out.write_all(&page).and_then(|()| out.flush());
    exit::OK
}

/// The page of `cmd` with a SUBCOMMAND DETAILS section that gives each
/// subcommand's own options.
fn man_page(cmd: &clap::Command, page: &mut Vec<u8>) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone());
    man.render(page)?;
    page.extend_from_slice(b".SH \"SUBCOMMAND DETAILS\"\n");
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" {
            continue;
        }
        let name = format!("sim-runner {}", sub.get_name());
        page.extend_from_slice(format!(".SS \"{name}\"\n").as_bytes());
        let sub = sub.clone().display_name(name.clone()).bin_name(name);
        let man = clap_mangen::Man::new(sub);
        // Synopsis, description and options of the subcommand.
        man.render_synopsis_section(page)?;
        man.render_description_section(page)?;
        man.render_options_section(page)?;
    }
    Ok(())
}
