//! `cargo xtask test`: everything CI runs, in the order that fails fastest:
//! formatting, clippy, `cargo test`, then every boot test.

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use crate::{
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
    test_boot::run(sh, project, &boot(Some(Method::Dynamic), true), &app)
}
