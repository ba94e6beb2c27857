//! The shared test helpers, re-exported from `switchboard-testkit` for the
//! modules of this test binary (see `crates/testkit` and docs/testing.md).

pub(crate) use switchboard_testkit::deps::{
    find_command, missing_dependency, require_command, require_postgres, require_python_module,
    target_dir, workspace_root,
};
pub(crate) use switchboard_testkit::process::{
    ServerProcess, TempDir, run_with_timeout, switchboard_binary as server_binary,
};
