//! Deployment files.
