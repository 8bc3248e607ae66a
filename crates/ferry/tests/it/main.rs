//! CLI integration tests: drive the built binary on temporary projects.
