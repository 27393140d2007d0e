//! Policy layers imported from the files an admin already has, instead of retyped into
//! the scenario:
//!
//! - the session host layer from a Group Policy object's `Registry.pol`
//!   ([`registry_pol`]) or from a `reg export` file ([`reg_file`]), whichever the bytes
//!   are (the extension does not decide);
//! - the RDP layer from a host pool as `az desktopvirtualization hostpool show` prints it
//!   ([`hostpool`]).
//!
//! Both registry formats are read into the same [`RegRecord`]s (what the file tells
//! Windows to do, in order), and [`session_host`] replays them onto the four settings
//! earshot knows; every other entry is ignored and counted. Nothing here panics on any
//! input: malformed files are [`ImportError`]s naming the file, the entry or line, and
//! what was expected (`harness/fuzz` and the randomized tests feed them arbitrary bytes).

mod error;
pub mod hostpool;
mod record;
pub mod reg_file;
pub mod registry_pol;
pub mod session_host;

pub use error::{ImportError, ParseError, Place};
pub use hostpool::{load_hostpool, read_hostpool, HostPoolRdp};
pub use record::{reg_type_name, RegOp, RegRecord, RegValue};
pub use session_host::{
    load_session_host, read_session_host, AppList, HostImport, ImportFormat, ImportedList,
    ImportedSetting, Setting,
};

#[cfg(test)]
mod tests;
