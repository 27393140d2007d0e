//! earshot, the harness: reads a scenario, works out from the policy layers what must
//! happen, drives both probes, and reports pass / fail / inconclusive with the evidence.
//!
//! - [`scenario`]: the TOML model and its validation.
//! - [`compare`]: two run reports compared (`earshot compare`).
//! - [`doctor`]: whether a rig is ready for a run (`earshot doctor`).
//! - [`policy`]: layers -> expectation, "the most restrictive setting wins".
//! - [`rdp`]: RDP properties parsed and checked.
//! - [`registry`]: the registry values of the session host layer.
//! - [`import`]: policy layers read from a GPO's Registry.pol, a .reg export or a host
//!   pool's JSON.
//! - [`inventory`]: the session hosts of a fleet run, and its shards.
//! - [`report`]: events -> terminal table, JSON, JUnit XML.
//! - [`proof`]: the proof a silence carries (plays confirmed inside the listen).
//! - [`runner`]: connects to the probes, preflight, the checks; emits events.
//! - [`verdict`]: expectation + observation -> pass / fail / inconclusive, with the cause.
#![warn(missing_docs)]

pub mod check;
pub mod compare;
pub mod doctor;
pub mod fuzzing;
pub mod host;
pub mod import;
pub mod inventory;
pub mod policy;
pub mod proof;
pub mod rdp;
pub mod registry;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod text;
pub mod verdict;
