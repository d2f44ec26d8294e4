//! Embeds the handler catalogue (`handlers/*.toml` and `handlers/*.sql`) into the binary, so that
//! adding a handler file needs no Rust change. `HANDLERS_DIR` can add or override files at runtime.
use std::{env, fs, path::Path};

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("handlers");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<_> = fs::read_dir(&dir)
        .expect("handlers/ directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("toml" | "sql")))
        .collect();
    files.sort();
    let mut out = String::from(
        "/// (file name, contents) of every file in handlers/.\npub const BUILTIN: &[(&str, &str)] = &[\n",
    );
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
        let name = f.file_name().unwrap().to_str().unwrap();
        out.push_str(&format!("    ({name:?}, include_str!({:?})),\n", f.display().to_string()));
    }
    out.push_str("];\n");
    fs::write(Path::new(&env::var("OUT_DIR").unwrap()).join("builtin_handlers.rs"), out).unwrap();
}
