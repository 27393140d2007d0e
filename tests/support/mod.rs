//! Shared support for the end-to-end tests: lab control and probe processes.
