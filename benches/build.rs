//! Generates the idle manager types of the `memory` bin: one `#[manager]` type per idle
//! manager, since a router runs one instance of each manager type. `EDRI_IDLE_TYPES` sets how
//! many (default 500: each type is one more instance of the serve loop to compile).

use std::fmt::Write as _;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=EDRI_IDLE_TYPES");
    let n: usize =
        std::env::var("EDRI_IDLE_TYPES").ok().and_then(|v| v.parse().ok()).unwrap_or(500).max(2);
    let mut out = String::new();
    for i in 0..n {
        let _ = writeln!(
            out,
            "/// Idle manager {i}.\npub struct Idle{i};\n\
             #[manager(manual)]\nimpl Idle{i} {{\n    #[solve]\n    fn poke(&mut self, _ev: &Poke) {{}}\n}}"
        );
    }
    let _ = writeln!(
        out,
        "/// How many idle manager types there are.\npub const IDLE_TYPES: usize = {n};"
    );
    let _ = writeln!(
        out,
        "/// Adds idle manager `i` to a builder.\npub const ADD_IDLE: [fn(EdriBuilder) -> EdriBuilder; {n}] = ["
    );
    for i in 0..n {
        let _ = writeln!(out, "    |b| b.manager(Idle{i}),");
    }
    out.push_str("];\n");
    let path = std::path::Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("idle.rs");
    std::fs::write(path, out).expect("write idle.rs");
}
