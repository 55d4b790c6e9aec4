//! `sqlx::migrate!` embeds the migration files at compile time, but cargo does not know the
//! macro reads them: without this, adding a migration and rebuilding could reuse a build
//! without it.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
