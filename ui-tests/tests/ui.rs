//! Compile-fail (`tests/ui/<theme>/*.rs`) and compile-pass (`tests/pass/*.rs`) cases of the
//! macros. The `.stderr` files are tied to the toolchain pinned in `rust-toolchain.toml`;
//! regenerate them with `TRYBUILD=overwrite cargo test -p edri-ui-tests` and read the diff.
//! `tests/pending/` holds misuses the macros do not reject yet; they are not run.

#[test]
fn ui() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let pinned = include_str!("../../rust-toolchain.toml")
        .lines()
        .find_map(|l| l.strip_prefix("channel = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("rust-toolchain.toml names a channel");
    assert!(
        version.starts_with(&format!("rustc {pinned} ")),
        "the ui-test .stderr files are tied to rustc {pinned}; this is {version}"
    );
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*/*.rs");
    t.pass("tests/pass/*.rs");
}
