//! The `switchboard` server's integration tests, as one test binary (one link
//! instead of one per file). Each module is one area; shared helpers are
//! `support` (re-exported from `switchboard-testkit`), `harness` (an in-process
//! server) and `rtc_common`.
//!
//! Run one area with `cargo test -p switchboard --test it -- pairing::`.

mod cluster_support;
mod harness;
mod meetings_common;
mod rtc_common;
mod support;
mod talk_common;

mod autobahn;
mod cluster;
mod cluster_faults;
mod cluster_history;
mod cluster_nats;
mod console_browser;
mod deploy;
mod fuzz;
mod hardening;
mod log_secrets;
mod meetings;
mod meetings_bench;
mod meetings_browser;
mod meetings_cluster;
mod meetings_persona;
mod meetings_pgeu;
mod metrics_doc;
mod ops_cli;
mod pairing;
mod pairing_bench;
mod pairing_node;
mod pairing_persona;
mod persona_pinghub;
mod pubsub;
mod pubsub_bench;
mod pubsub_history;
mod rtc;
mod rtc_bench;
mod rtc_browser;
mod rtc_differences;
mod rtc_persona;
mod rtc_store;
mod soak_bench;
mod talk;
mod talk_oracle;
mod talk_persona;
mod talk_v2;
mod tls;
