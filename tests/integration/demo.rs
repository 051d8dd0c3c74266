//! The demo, run as a real process.
