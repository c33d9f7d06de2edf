//! What more than one integration test needs from the machine it runs on.

use std::path::PathBuf;

/// The project cache the xtask uses outside these tests (where the user's
/// docker-compose is already unpacked, which the tests share rather than
/// unpack one per test).
pub fn user_cache() -> PathBuf {
    match std::env::var_os("LINUXKIT_COMPOSE_CACHE").filter(|d| !d.is_empty()) {
        Some(dir) => dir.into(),
        None => match std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .filter(|d| d.is_absolute())
        {
            Some(xdg) => xdg.join("linuxkit-compose"),
            None => PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/linuxkit-compose"),
        },
    }
}

/// The one `error:` line of a failed run's standard error (asserting there
/// is exactly one: a bad input is one clear error).
pub fn the_error(stderr: &str) -> String {
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line, got:\n{stderr}");
    errors[0].to_string()
}
