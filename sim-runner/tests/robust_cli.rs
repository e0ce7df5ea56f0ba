//! Robust input and output at the command line (issue R): only regular
//! files are read (FIFOs and devices refused without blocking), a size
//! limit, standard input as `-`, bytes that are not UTF-8, long lines in
//! diagnostics, output that cannot be written (`/dev/full`, a closed pipe)
//! and symbolic links under `test`.

mod common;

use common::{bin, stderr, stdout};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn scratch(name: &str) -> PathBuf {
    common::scratch("robust-cli", name)
}

const SCENARIO: &str = r#"scenario "ok" { cpus 1; expect clean; }
ULONG X;
thread T { X = 1; }
"#;

/// A scenario whose report is far larger than a pipe's buffer (64 KiB).
const CHATTY: &str = r#"scenario "chatty" { cpus 1; expect clean; }
thread T {
    ULONG i;
    for (i = 0; i < 5000; i++) {
        DbgPrint("a fairly long line of DbgPrint output, number %d\n", i);
    }
}
"#;

/// Wait at most `limit` for `child`; a child still running then is killed
/// and the test fails (the command blocked).
fn wait_bounded(mut child: Child, limit: Duration, what: &str) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} still running after {limit:?}: it blocked");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn spawn(cmd: &mut Command) -> Child {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn fifo_is_refused_without_blocking() {
    let dir = scratch("fifo");
    let fifo = dir.join("pipe.sim");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success(), "mkfifo failed");
    for command in ["run", "explore"] {
        let child = spawn(bin().arg(command).arg(&fifo));
        let o = wait_bounded(child, Duration::from_secs(20), command);
        assert_eq!(o.status.code(), Some(2), "{command}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("not a regular file (it is a FIFO)"),
            "{command}: {err}"
        );
    }
}

#[test]
fn device_is_refused_without_reading_it() {
    let child = spawn(bin().args(["run", "/dev/zero"]));
    let o = wait_bounded(child, Duration::from_secs(20), "run /dev/zero");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("/dev/zero: not a regular file (it is a character device)"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn file_over_16_mib_is_refused() {
    let dir = scratch("size");
    let big = dir.join("big.sim");
    let f = fs::File::create(&big).unwrap();
    f.set_len(16 * 1024 * 1024 + 1).unwrap(); // sparse: no 16 MiB written
    drop(f);
    let o = bin().arg("run").arg(&big).output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("scenario files are limited to 16777216 bytes (16 MiB)"),
        "{}",
        stderr(&o)
    );
    // Exactly at the limit is read (and then rejected as text, not size).
    let at = dir.join("at-limit.sim");
    let mut text = SCENARIO.as_bytes().to_vec();
    text.resize(16 * 1024 * 1024, b' ');
    fs::write(&at, text).unwrap();
    let o = bin().arg("run").arg(&at).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// Run with `input` on standard input.
fn with_stdin(cmd: &mut Command, input: Vec<u8>) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // The child may stop reading (size limit): a failed write is fine.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap();
    o
}

#[test]
fn dash_reads_standard_input_with_the_same_limit() {
    let o = with_stdin(bin().args(["run", "-"]), SCENARIO.as_bytes().to_vec());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stdout(&o).is_empty());

    let bad = b"scenario \"s\" { cpus 1; }\nthread T { @ }\n".to_vec();
    let o = with_stdin(bin().args(["run", "-"]), bad);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("<stdin>:2:12"), "{}", stderr(&o));

    let o = with_stdin(bin().args(["run", "-"]), vec![b' '; 16 * 1024 * 1024 + 10]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("<stdin>: the input goes on past 16777216 bytes"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn invalid_utf8_is_reported_at_its_line_and_column() {
    let dir = scratch("utf8");
    let file = dir.join("latin1.sim");
    fs::write(
        &file,
        b"scenario \"s\" { cpus 1; }\n// caf\xe9\nthread T { }\n".as_slice(),
    )
    .unwrap();
    let o = bin().arg("run").arg(&file).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "{}:2:7: the file is not valid UTF-8 (byte 0xE9)",
            file.display()
        )),
        "{err}"
    );
    assert!(err.contains("save the file as UTF-8"), "{err}");
}

#[test]
fn long_line_diagnostic_shows_a_window_not_the_line() {
    let dir = scratch("long-line");
    let file = dir.join("one-line.sim");
    let mut text = String::from("scenario \"s\" { cpus 1; } thread T { ");
    for _ in 0..200_000 {
        text.push_str("X = 1; ");
    }
    text.push_str("@ }");
    fs::write(&file, &text).unwrap();
    let o = bin().arg("run").arg(&file).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.len() < 4096, "{} bytes of diagnostic", err.len());
    assert!(err.contains("unexpected character `@`"), "{err}");
    assert!(err.contains(&format!(":1:{}", text.len() - 2)), "{err}");
    assert!(err.contains("X = 1; @ }"), "{err}");
}

/// `sim-runner ARGS > /dev/full`.
fn to_dev_full(args: &[&str], dir: &Path) -> Output {
    let full = fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    bin()
        .args(args)
        .current_dir(dir)
        .stdout(full)
        .stderr(Stdio::piped())
        .output()
        .unwrap()
}

#[test]
fn every_command_says_when_it_cannot_write() {
    let dir = scratch("dev-full");
    fs::write(dir.join("ok.sim"), SCENARIO).unwrap();
    let commands: [&[&str]; 6] = [
        &["run", "ok.sim"],
        &["run", "ok.sim", "--format", "json"],
        &["explore", "ok.sim", "--schedules", "3"],
        &["test", "ok.sim"],
        &["rules"],
        &["explain", "0xF"],
    ];
    for args in commands {
        let o = to_dev_full(args, &dir);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("error: cannot write the output:"),
            "{args:?}: {err}"
        );
    }
}

/// Run with standard output a pipe whose reader is closed at once.
fn to_closed_pipe(cmd: &mut Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    wait_bounded(child, Duration::from_secs(60), "closed pipe")
}

#[test]
fn closed_pipe_ends_quietly_with_141() {
    let dir = scratch("closed-pipe");
    fs::write(dir.join("chatty.sim"), CHATTY).unwrap();
    for format in ["text", "json"] {
        let o = to_closed_pipe(
            bin()
                .args(["run", "chatty.sim", "--format", format])
                .current_dir(&dir),
        );
        assert_eq!(o.status.code(), Some(141), "{format}: {}", stderr(&o));
        assert_eq!(stderr(&o), "", "{format}");
    }
}

#[cfg(unix)]
#[test]
fn test_follows_symlinks_once_and_reports_loops() {
    use std::os::unix::fs::symlink;
    let dir = scratch("symlinks");
    let real = dir.join("real");
    fs::create_dir_all(&real).unwrap();
    fs::write(real.join("ok.sim"), SCENARIO).unwrap();
    // A link to a file, and a link to the directory holding it: the same
    // real file three ways, run once.
    symlink(real.join("ok.sim"), dir.join("link.sim")).unwrap();
    symlink(&real, dir.join("again")).unwrap();
    let o = bin().arg("test").arg(&dir).output().unwrap();
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(out.ends_with("1 passed, 0 failed\n"), "{out}");

    // A link to a file outside the tree is followed.
    let outside = scratch("symlinks-outside");
    fs::write(outside.join("out.sim"), SCENARIO).unwrap();
    let tree = scratch("symlinks-tree");
    symlink(outside.join("out.sim"), tree.join("linked.sim")).unwrap();
    let o = bin().arg("test").arg(&tree).output().unwrap();
    assert!(
        stdout(&o).ends_with("1 passed, 0 failed\n"),
        "{}",
        stdout(&o)
    );

    // A loop is a loop.
    let looped = scratch("symlink-loop");
    symlink(looped.join("b.sim"), looped.join("a.sim")).unwrap();
    symlink(looped.join("a.sim"), looped.join("b.sim")).unwrap();
    let o = bin()
        .arg("test")
        .arg(looped.join("a.sim"))
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0));
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(all.contains("symbolic link loop"), "{all}");
    assert!(!all.contains("does not exist"), "{all}");

    // A directory link back to an ancestor is a loop too, not a hang.
    let cyc = scratch("symlink-dir-loop");
    fs::write(cyc.join("ok.sim"), SCENARIO).unwrap();
    symlink(&cyc, cyc.join("up")).unwrap();
    let o = bin().arg("test").arg(&cyc).output().unwrap();
    let all = format!("{}{}", stdout(&o), stderr(&o));
    assert!(all.contains("symbolic link loop"), "{all}");
}
