//! `cargo xtask test`: everything CI runs, in the order that fails fastest:
//! formatting, clippy, `cargo test`, then every boot test.

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use crate::{
    app::compose,
    base::{exec, project::Project, ui},
    run::{boot::VmOpts, test_boot},
    vm::methods::Method,
};

pub fn run(sh: &Shell, project: &Project, vm: VmOpts) -> Result<()> {
    let checks = [
        ("cargo fmt --check", "formatting: run `cargo fmt --all`"),
        ("cargo clippy", "clippy"),
        ("cargo test --workspace", "unit and snapshot tests"),
    ];
    for (what, context) in checks {
        let step = ui::step(what);
        let command = match what {
            "cargo fmt --check" => cmd!(sh, "cargo fmt --all --check"),
            "cargo clippy" => cmd!(sh, "cargo clippy --workspace --all-targets --locked -- -D warnings"),
            _ => cmd!(sh, "cargo test --workspace --locked"),
        };
        exec::run(exec::clean_cargo_env(command)).context(context)?;
        step.done();
    }
    let app = crate::building::apps::default_app(project)?;
    let boot = |method, unreachable_registry| test_boot::Options {
        method,
        registry: None,
        unreachable_registry,
        timeout: None,
        vm: vm.clone(),
    };
    test_boot::run(sh, project, &boot(None, false), &app)?;
    test_boot::run(sh, project, &boot(Some(Method::Static), false), &app)?;
    test_boot::run(sh, project, &boot(Some(Method::Dynamic), false), &app)?;
    test_boot::run(sh, project, &boot(Some(Method::Dynamic), true), &app)?;
    // The second app: Python on the python:3.11-slim stand-in, its own published
    // port, a bind-mounted file it serves.
    let source = compose::Source {
        files: vec![project.root.join(SECOND_APP)],
        ..Default::default()
    };
    let second = crate::building::apps::load(project, &source)?;
    test_boot::run(sh, project, &boot(Some(Method::Static), false), &second)?;
    test_boot::run(sh, project, &boot(Some(Method::Dynamic), false), &second)
}

/// The repository's second example app.
const SECOND_APP: &str = "compose/hello-py.yml";
