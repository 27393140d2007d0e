//! The shared token: loading, generating, and keeping it out of logs.
//!
//! A token file holds one token per line (blank lines and `#` comments are skipped). A
//! probe accepts every token of its files, so a new token can be rolled out to the
//! harnesses while the old one still works, then the old line removed: rotation without
//! downtime. A client proves one token: the first of its file.
//!
//! A token's bytes never appear in `Debug` output, in errors or in logs; errors name the
//! file or the variable it came from instead.

use std::path::{Path, PathBuf};

use rand::RngCore;

/// Environment variable holding the token when no file is given.
pub const TOKEN_ENV: &str = "EARSHOT_TOKEN";

/// Shortest token accepted, in bytes.
pub const MIN_TOKEN_LEN: usize = 16;

/// Random bytes in a generated token (hex-encoded in the file: 64 characters).
pub const GENERATED_TOKEN_BYTES: usize = 32;

/// Why a token could not be loaded or created.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file could not be read.
    #[error("cannot read token file {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        error: std::io::Error,
    },
    /// The path names a folder or something else that is not a file.
    #[error(
        "token file {path} is a folder, not a file: expected the file `earshot-probe token \
         new FILE` wrote"
    )]
    NotAFile {
        /// The path.
        path: PathBuf,
    },
    /// Group or others may read the file.
    #[error(
        "token file {path} is readable by group or others (mode {mode:04o}); \
         expected owner-only access: chmod 600 {path}"
    )]
    Permissive {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The token is too short to be a secret.
    #[error("token from {origin} is {len} bytes; expected at least {MIN_TOKEN_LEN}")]
    TooShort {
        /// File path (and line) or variable name.
        origin: String,
        /// Its length after trimming.
        len: usize,
    },
    /// The file holds no token at all.
    #[error("token file {path} holds no token (only blank or comment lines)")]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// The environment variable is set but is not text.
    #[error(
        "{var} is set but is not valid UTF-8 text; expected the token (hex or base64), as \
         `earshot-probe token new` writes it"
    )]
    NotText {
        /// The variable.
        var: &'static str,
    },
    /// A new token file could not be written.
    #[error("cannot create token file {path}: {error}")]
    Create {
        /// The file.
        path: PathBuf,
        /// The cause.
        error: std::io::Error,
    },
}

/// The probe role a token can be bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TokenRole {
    /// The probe inside the remote session.
    Session,
    /// The probe on the client rig.
    Client,
}

impl TokenRole {
    /// What a token bound to this role starts with.
    pub fn prefix(self) -> &'static str {
        match self {
            TokenRole::Session => "earshot-session-",
            TokenRole::Client => "earshot-client-",
        }
    }

    /// The role in words.
    pub fn name(self) -> &'static str {
        match self {
            TokenRole::Session => "session",
            TokenRole::Client => "client",
        }
    }
}

/// The shared secret. Its `Debug` output never shows the bytes; the bytes are wiped when
/// the token is dropped.
#[derive(Clone)]
pub struct Token(zeroize::Zeroizing<Vec<u8>>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token(<{} bytes>)", self.0.len())
    }
}

impl Token {
    /// A token from its text (surrounding whitespace trimmed).
    ///
    /// # Errors
    /// [`TokenError::TooShort`] below [`MIN_TOKEN_LEN`] bytes; `origin` names the source.
    pub fn new(text: &str, origin: &str) -> Result<Token, TokenError> {
        let t = text.trim();
        if t.len() < MIN_TOKEN_LEN {
            return Err(TokenError::TooShort {
                origin: origin.to_string(),
                len: t.len(),
            });
        }
        Ok(Token(zeroize::Zeroizing::new(t.as_bytes().to_vec())))
    }

    /// The role the token is bound to, if it was made for one (`token new --role`): its
    /// text starts with `earshot-session-` or `earshot-client-`. A harness refuses to use a
    /// token bound to one role for a probe in the other, so a client rig's probe, holding
    /// only a client token, can never answer as the session.
    pub fn role(&self) -> Option<TokenRole> {
        [TokenRole::Session, TokenRole::Client]
            .into_iter()
            .find(|r| self.0.starts_with(r.prefix().as_bytes()))
    }

    /// A fresh random token bound to `role`.
    pub fn generate_for(role: TokenRole) -> Token {
        let plain = Token::generate();
        let mut text = role.prefix().as_bytes().to_vec();
        text.extend_from_slice(&plain.0);
        Token(zeroize::Zeroizing::new(text))
    }

    /// The secret bytes, for the handshake's MACs and key derivation only.
    pub(crate) fn secret(&self) -> &[u8] {
        &self.0
    }

    /// A fresh random token ([`GENERATED_TOKEN_BYTES`] from the OS RNG, hex).
    pub fn generate() -> Token {
        let mut bytes = zeroize::Zeroizing::new([0u8; GENERATED_TOKEN_BYTES]);
        rand::rngs::OsRng.fill_bytes(&mut *bytes);
        Token(zeroize::Zeroizing::new(hex::encode(*bytes).into_bytes()))
    }

    /// Every token in a token file, in order. On Unix a file that group or others can
    /// read is refused.
    ///
    /// # Errors
    /// [`TokenError`] naming the file (and its mode when too open, the line when short).
    pub fn all_from_file(path: &Path) -> Result<Vec<Token>, TokenError> {
        let read_err = |error| TokenError::Read {
            path: path.to_path_buf(),
            error,
        };
        let meta = std::fs::metadata(path).map_err(read_err)?;
        if !meta.is_file() {
            return Err(TokenError::NotAFile {
                path: path.to_path_buf(),
            });
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                return Err(TokenError::Permissive {
                    path: path.to_path_buf(),
                    mode,
                });
            }
        }
        let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(read_err)?);
        let mut tokens = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            tokens.push(Token::new(
                line,
                &format!("{} line {}", path.display(), i + 1),
            )?);
        }
        if tokens.is_empty() {
            return Err(TokenError::Empty {
                path: path.to_path_buf(),
            });
        }
        Ok(tokens)
    }

    /// The first token of a token file (what a client proves).
    ///
    /// # Errors
    /// As [`Token::all_from_file`].
    pub fn from_file(path: &Path) -> Result<Token, TokenError> {
        let mut all = Token::all_from_file(path)?;
        Ok(all.swap_remove(0))
    }

    /// The token in [`TOKEN_ENV`], if set.
    ///
    /// # Errors
    /// [`TokenError::TooShort`].
    pub fn from_env() -> Result<Option<Token>, TokenError> {
        // A variable that is set but unreadable is an error, never a probe without a token.
        match std::env::var(TOKEN_ENV) {
            Ok(v) => Token::new(&v, TOKEN_ENV).map(Some),
            Err(std::env::VarError::NotUnicode(_)) => Err(TokenError::NotText { var: TOKEN_ENV }),
            Err(std::env::VarError::NotPresent) => Ok(None),
        }
    }

    /// The token from `file` if given, else from [`TOKEN_ENV`], else none.
    ///
    /// # Errors
    /// As [`Token::from_file`] / [`Token::from_env`].
    pub fn load(file: Option<&Path>) -> Result<Option<Token>, TokenError> {
        match file {
            Some(p) => Token::from_file(p).map(Some),
            None => Token::from_env(),
        }
    }

    /// Every token of every file in `files`, or the one in [`TOKEN_ENV`] when no file is
    /// given; empty when neither (a tokenless probe, loopback only).
    ///
    /// # Errors
    /// As [`Token::all_from_file`] / [`Token::from_env`].
    pub fn load_all(files: &[PathBuf]) -> Result<Vec<Token>, TokenError> {
        if files.is_empty() {
            return Ok(Token::from_env()?.into_iter().collect());
        }
        let mut all = Vec::new();
        for f in files {
            all.extend(Token::all_from_file(f)?);
        }
        Ok(all)
    }

    /// Writes a fresh token to a new file that only the current user can read (mode 0600
    /// on Unix; on Windows an ACL granting the current user alone). An existing file is
    /// never overwritten.
    ///
    /// # Errors
    /// [`TokenError::Create`] naming the file.
    pub fn create_file(path: &Path) -> Result<Token, TokenError> {
        Token::create_file_for(path, None)
    }

    /// As [`Token::create_file`], the token bound to `role` when given.
    ///
    /// # Errors
    /// As [`Token::create_file`].
    pub fn create_file_for(path: &Path, role: Option<TokenRole>) -> Result<Token, TokenError> {
        let token = role.map_or_else(Token::generate, Token::generate_for);
        let mut text = zeroize::Zeroizing::new(token.0.to_vec());
        text.push(b'\n');
        write_private(path, &text).map_err(|error| TokenError::Create {
            path: path.to_path_buf(),
            error,
        })?;
        Ok(token)
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(windows)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = windows_acl::create_owner_only(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(not(any(unix, windows)))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// A new file whose DACL grants the current user full access and nobody else anything.
#[cfg(windows)]
mod windows_acl {
    use std::os::windows::ffi::OsStrExt;
    use std::os::windows::io::FromRawHandle;
    use std::path::Path;

    use windows_sys::Win32::Foundation::{
        CloseHandle, GetLastError, LocalFree, GENERIC_WRITE, HANDLE, INVALID_HANDLE_VALUE,
    };
    use windows_sys::Win32::Security::Authorization::{
        ConvertSidToStringSidW, ConvertStringSecurityDescriptorToSecurityDescriptorW,
        SDDL_REVISION_1,
    };
    use windows_sys::Win32::Security::{
        GetTokenInformation, TokenUser, PSECURITY_DESCRIPTOR, SECURITY_ATTRIBUTES, TOKEN_QUERY,
        TOKEN_USER,
    };
    use windows_sys::Win32::Storage::FileSystem::{CreateFileW, CREATE_NEW, FILE_ATTRIBUTE_NORMAL};
    use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

    fn last_error() -> std::io::Error {
        // SAFETY: no preconditions.
        std::io::Error::from_raw_os_error(unsafe { GetLastError() } as i32)
    }

    /// The current user's SID as text (`S-1-5-21-...`).
    fn current_user_sid() -> std::io::Result<String> {
        let mut token: HANDLE = std::ptr::null_mut();
        // SAFETY: `token` is a valid out pointer; the pseudo-handle needs no closing.
        if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
            return Err(last_error());
        }
        let mut buf = vec![0u64; 128]; // 1 KiB, 8-byte aligned for TOKEN_USER
        let mut needed = 0u32;
        // SAFETY: `buf` is writable for the size given; `needed` is a valid out pointer.
        let ok = unsafe {
            GetTokenInformation(
                token,
                TokenUser,
                buf.as_mut_ptr().cast(),
                (buf.len() * 8) as u32,
                &mut needed,
            )
        };
        let err = last_error();
        // SAFETY: `token` was opened above.
        unsafe { CloseHandle(token) };
        if ok == 0 {
            return Err(err);
        }
        // SAFETY: on success the buffer starts with a TOKEN_USER whose SID points inside it.
        let sid = unsafe { (*buf.as_ptr().cast::<TOKEN_USER>()).User.Sid };
        let mut text: *mut u16 = std::ptr::null_mut();
        // SAFETY: `sid` is valid while `buf` lives; `text` is a valid out pointer.
        if unsafe { ConvertSidToStringSidW(sid, &mut text) } == 0 {
            return Err(last_error());
        }
        // SAFETY: `text` is a NUL-terminated UTF-16 string allocated by the call.
        let s = unsafe {
            let mut n = 0;
            while *text.add(n) != 0 {
                n += 1;
            }
            let s = String::from_utf16_lossy(std::slice::from_raw_parts(text, n));
            LocalFree(text.cast());
            s
        };
        Ok(s)
    }

    pub(super) fn create_owner_only(path: &Path) -> std::io::Result<std::fs::File> {
        // Protected DACL ("P": nothing inherited) with one entry: file-all to this user.
        let sddl = format!("D:P(A;;FA;;;{})", current_user_sid()?);
        let wide_sddl: Vec<u16> = sddl.encode_utf16().chain(std::iter::once(0)).collect();
        let mut sd: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        // SAFETY: `wide_sddl` is NUL-terminated; `sd` is a valid out pointer.
        let ok = unsafe {
            ConvertStringSecurityDescriptorToSecurityDescriptorW(
                wide_sddl.as_ptr(),
                SDDL_REVISION_1,
                &mut sd,
                std::ptr::null_mut(),
            )
        };
        if ok == 0 {
            return Err(last_error());
        }
        let sa = SECURITY_ATTRIBUTES {
            nLength: std::mem::size_of::<SECURITY_ATTRIBUTES>() as u32,
            lpSecurityDescriptor: sd,
            bInheritHandle: 0,
        };
        let wide_path: Vec<u16> = path
            .as_os_str()
            .encode_wide()
            .chain(std::iter::once(0))
            .collect();
        // SAFETY: `wide_path` is NUL-terminated, `sa` and the descriptor outlive the call.
        let h = unsafe {
            CreateFileW(
                wide_path.as_ptr(),
                GENERIC_WRITE,
                0,
                &sa,
                CREATE_NEW,
                FILE_ATTRIBUTE_NORMAL,
                std::ptr::null_mut(),
            )
        };
        let err = last_error();
        // SAFETY: `sd` was allocated by the conversion above.
        unsafe { LocalFree(sd) };
        if h == INVALID_HANDLE_VALUE {
            return Err(err);
        }
        // SAFETY: `h` is a fresh, owned file handle.
        Ok(unsafe { std::fs::File::from_raw_handle(h) })
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_token_made_for_a_role_says_so_and_a_plain_one_says_nothing() {
        let session = Token::generate_for(TokenRole::Session);
        assert_eq!(session.role(), Some(TokenRole::Session));
        assert_eq!(
            Token::generate_for(TokenRole::Client).role(),
            Some(TokenRole::Client)
        );
        assert_eq!(Token::generate().role(), None);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t");
        Token::create_file_for(&path, Some(TokenRole::Client)).unwrap();
        let read = Token::from_file(&path).unwrap();
        assert_eq!(read.role(), Some(TokenRole::Client));
    }

    use super::*;

    #[test]
    fn short_tokens_are_refused_and_debug_hides_the_bytes() {
        let e = Token::new("  short \n", "EARSHOT_TOKEN").unwrap_err();
        assert!(e.to_string().contains("EARSHOT_TOKEN"), "{e}");
        let t = Token::new("a-token-long-enough\n", "test").unwrap();
        assert_eq!(format!("{t:?}"), "Token(<19 bytes>)");
    }

    #[cfg(unix)]
    #[test]
    fn token_file_readable_by_others_is_refused_naming_file_and_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        std::fs::write(&p, "0123456789abcdef0123\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = Token::from_file(&p).unwrap_err().to_string();
        assert!(
            e.contains(&p.display().to_string()) && e.contains("0644"),
            "{e}"
        );
        assert!(!e.contains("0123456789abcdef0123"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(Token::from_file(&p).is_ok());
        let e = Token::from_file(&dir.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing"), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn created_token_files_are_owner_only_fresh_and_never_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        let t = Token::create_file(&p).unwrap();
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = Token::from_file(&p).unwrap();
        assert_eq!(back.secret(), t.secret());
        assert_eq!(t.secret().len(), 2 * GENERATED_TOKEN_BYTES);
        let e = Token::create_file(&p).unwrap_err().to_string();
        assert!(e.contains(&p.display().to_string()), "{e}");
        assert!(!e.contains(std::str::from_utf8(t.secret()).unwrap()), "{e}");
        assert_eq!(Token::from_file(&p).unwrap().secret(), t.secret());
        let other = Token::create_file(&dir.path().join("other")).unwrap();
        assert_ne!(other.secret(), t.secret());
    }

    #[cfg(unix)]
    #[test]
    fn a_file_with_several_lines_holds_several_tokens_and_short_lines_are_named() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokens");
        std::fs::write(
            &p,
            "# rotation: new first\nthe-new-token-0123456789\n\n  the-old-token-0123456789 \n",
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let all = Token::all_from_file(&p).unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].secret(), b"the-old-token-0123456789");
        assert_eq!(
            Token::from_file(&p).unwrap().secret(),
            b"the-new-token-0123456789"
        );
        std::fs::write(&p, "the-new-token-0123456789\nshort-secret\n").unwrap();
        let e = Token::all_from_file(&p).unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
        assert!(!e.contains("short-secret"), "{e}");
        std::fs::write(&p, "# nothing\n\n").unwrap();
        let e = Token::all_from_file(&p).unwrap_err();
        assert!(matches!(e, TokenError::Empty { .. }), "{e}");
    }
}
