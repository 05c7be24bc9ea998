//! The dashboard and `edgetick.js` in headless Chromium.

use crate::*;

pub fn dashboard_and_client_library_in_chromium(ctx: &mut Ctx) {
    ctx.ex.control("pause?on=0");
    let mut cmd = std::process::Command::new("node");
    cmd.args(["--test", "--test-reporter=spec"])
        .arg(support::root().join("tests/browser/dashboard.test.mjs"))
        .env("EDGETICK_URL", ctx.svc.url(""))
        .env("EXCHANGE_URL", format!("http://127.0.0.1:{}", ctx.ex.port));
    let (out, text) = run_logged(cmd, "browser.log");
    eprintln!(
        "{}",
        text.lines()
            .filter(|l| l.contains('✔') || l.contains('✖'))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(
        out.status.success(),
        "browser tests failed (target/e2e-logs/browser.log):\n{text}"
    );
    ctx.ex.control("pause?on=0");
}

pub fn dashboard_survives_exchange_and_service_restarts(ctx: &mut Ctx) {
    use std::io::{BufRead, BufReader, Write};
    ctx.ex.control("pause?on=0");
    let mut child = std::process::Command::new("node")
        .arg(support::root().join("tests/browser/restarts.mjs"))
        .env("EDGETICK_URL", ctx.svc.url(""))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .expect("node");
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut expect_step = |what: &str| {
        let line = out.next().and_then(Result::ok).unwrap_or_default();
        eprintln!("    {line}");
        assert!(
            line.starts_with("step: ") && line.contains(what),
            "expected {what:?}, got {line:?}"
        );
    };
    expect_step("stop the exchange");
    ctx.ex.kill();
    writeln!(stdin, "go").unwrap();
    expect_step("start the exchange");
    ctx.ex.restart();
    ctx.ex.control("pause?on=0");
    writeln!(stdin, "go").unwrap();
    expect_step("stop the service");
    ctx.svc.stop();
    writeln!(stdin, "go").unwrap();
    expect_step("disconnected");
    ctx.svc.restart();
    writeln!(stdin, "go").unwrap();
    expect_step("prices resumed");
    assert!(child.wait().unwrap().success());
}
