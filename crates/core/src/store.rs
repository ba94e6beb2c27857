//! The store seam: what services keep that must outlive a process.
//!
//! Filled in with the store layer (the rtc service's registered names are the first user).
