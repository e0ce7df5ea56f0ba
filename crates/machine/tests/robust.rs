//! Run-time behaviour fixed under issue R: DbgPrint formats (string
//! literal arguments, flags and widths) and IRQL arguments outside 0..15.

use machine::{load_source, run, RunOptions, RunReport};

fn run_text(text: &str) -> RunReport {
    let program = match load_source("r.sim", text) {
        Ok(p) => p,
        Err(e) => panic!("rejected: {e:?}"),
    };
    run(&program, &RunOptions::default())
}

#[test]
fn dbgprint_takes_string_literals_flags_and_widths() {
    let r = run_text(
        r#"scenario "p" { cpus 1; }
thread T {
    DbgPrint("%s\n", "abc");
    DbgPrint("[%-6s|%5s] %d%%\n", "ab", "100%", 7);
    DbgPrint("%+05d %#x %08lX %c %u\n", 42, 255, 48879, 65, 4294967295);
}
"#,
    );
    assert_eq!(
        r.output,
        vec![
            "abc".to_string(),
            "[ab    | 100%] 7%".to_string(),
            "+0042 0xff 0000BEEF A 4294967295".to_string(),
        ]
    );
}

fn bugcheck_of(body: &str) -> (u32, [u64; 4], String) {
    let r = run_text(&format!(
        "scenario \"i\" {{ cpus 1; }}\nthread T {{ KIRQL Old; {body} }}\n"
    ));
    let b = r.bugcheck.expect("a bugcheck");
    (b.code, b.params, b.detail)
}

#[test]
fn raising_above_high_level_says_so() {
    let (code, params, detail) = bugcheck_of("KeRaiseIrql(16, &Old);");
    assert_eq!((code, params[0]), (0xC4, 0x30));
    assert!(detail.contains("above HIGH_LEVEL (15)"), "{detail}");
    assert!(!detail.contains("below the current IRQL"), "{detail}");
}

#[test]
fn lowering_above_high_level_says_so() {
    let (code, params, detail) = bugcheck_of("KeRaiseIrql(DISPATCH_LEVEL, &Old); KeLowerIrql(20);");
    assert_eq!((code, params[0]), (0xC4, 0x31));
    assert!(
        detail.contains("KeLowerIrql asked for IRQL 20, above HIGH_LEVEL (15)"),
        "{detail}"
    );
}

#[test]
fn in_range_raise_to_lower_keeps_its_message() {
    let (code, params, detail) =
        bugcheck_of("KeRaiseIrql(DISPATCH_LEVEL, &Old); KeRaiseIrql(1, &Old);");
    assert_eq!((code, params[0]), (0xC4, 0x30));
    assert!(detail.contains("below the current IRQL 2"), "{detail}");
}
