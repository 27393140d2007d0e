//! The control protocol shared by probe and harness: frames, messages, authentication,
//! and the client.
//!
//! CONTRACT (filled in by the protocol work).
