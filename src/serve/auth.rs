//! Bearer tokens with scopes: the tokens file, and who may call what.
//!
//! The tokens file (`--tokens FILE`) has one `SCOPE TOKEN` per line; blank lines and
//! lines starting with `#` are ignored. Scopes nest: `read` may GET and subscribe,
//! `write` may also feed inputs and advance watermarks, `admin` may do everything.
//! The server keeps only each token's SHA-256 digest and compares a presented token's
//! digest with every one of them in constant time, so neither the time of an answer
//! nor the server's memory tells a token. Tokens never appear in logs or errors.
//!
//! The file is read again when it changes (checked every few seconds): adding a line
//! grants a token, removing it revokes it, without a restart. A file that no longer
//! parses revokes every token until it is fixed (the error is logged).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use aws_lc_rs::digest::{SHA256, digest};
use axum::http::Method;
use subtle::{ConditionallySelectable, ConstantTimeEq};

use super::stamp::{Stamp, stamp};

/// What a token may do; each scope includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// GET anything, subscribe.
    Read,
    /// Also feed inputs and advance watermarks.
    Write,
    /// Everything: create, change and delete jobs.
    Admin,
}

impl Scope {
    /// The scope's name in the tokens file.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        }
    }

    fn parse(word: &str) -> Option<Scope> {
        [Scope::Read, Scope::Write, Scope::Admin].into_iter().find(|s| s.name().eq_ignore_ascii_case(word))
    }
}

/// What a request needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Nothing: `/healthz` and the page at `/` (its data comes from the API, and it
    /// asks for a token).
    Open,
    /// A token of at least this scope (when the server has tokens).
    Needs(Scope),
}

/// The access `method` on `path` needs: everything but `/healthz` and `/` needs a
/// token (every `/api/v1` route and `/metrics`, and unknown paths too, so that no
/// spelling of a path can reach a route unchecked); reading needs `read`, feeding an
/// input or advancing it `write`, any other change `admin`.
pub fn access(method: &Method, path: &str) -> Access {
    if path == "/healthz" || path == "/" {
        return Access::Open;
    }
    if method == Method::GET || method == Method::HEAD || method == Method::OPTIONS {
        return Access::Needs(Scope::Read);
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let feeds = matches!(
        segments.as_slice(),
        ["api", "v1", "jobs", _, "inputs", _] | ["api", "v1", "jobs", _, "inputs", _, "advance"]
    );
    if method == Method::POST && feeds { Access::Needs(Scope::Write) } else { Access::Needs(Scope::Admin) }
}

/// Whether a request to `path` may carry its token as `?access_token=` (a browser's
/// `EventSource` and `WebSocket` cannot set headers).
pub fn takes_query_token(method: &Method, path: &str) -> bool {
    method == Method::GET && path.starts_with("/api/v1/") && path.ends_with("/subscribe")
}

/// A set of tokens, as digests.
#[derive(Debug, Default)]
pub struct Tokens {
    entries: Vec<([u8; 32], Scope)>,
}

/// Why a tokens file cannot be used. Never quotes a token.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    /// The file cannot be read.
    #[error("cannot read the tokens file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not `SCOPE TOKEN`.
    #[error("tokens file {}, line {line}: {problem}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// The line number (from 1).
        line: usize,
        /// What is wrong, without the token.
        problem: &'static str,
    },
    /// The file has no token.
    #[error("the tokens file {} has no token (lines: SCOPE TOKEN, SCOPE one of read, write, admin)", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
}

/// The identity of a token that matched: the start of its digest, which stays the same
/// when the file is edited around it (the rate limit counts by it).
pub type TokenId = u64;

impl Tokens {
    /// Parses a tokens file's text; `path` only names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Tokens, TokensError> {
        let mut tokens = Tokens::default();
        for (i, line) in text.lines().enumerate() {
            let line_error = |problem| TokensError::Line { path: path.to_path_buf(), line: i + 1, problem };
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.split_whitespace();
            let (Some(scope), Some(token), None) = (words.next(), words.next(), words.next()) else {
                return Err(line_error("expected `SCOPE TOKEN` (one token per line)"));
            };
            let scope = Scope::parse(scope).ok_or_else(|| line_error("the scope must be read, write or admin"))?;
            if !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(line_error("a token must be printable ASCII (it travels in an HTTP header)"));
            }
            let hash = hash(token);
            if tokens.entries.iter().any(|(h, _)| *h == hash) {
                return Err(line_error("this token appears on an earlier line"));
            }
            if token.len() < 16 {
                tracing::warn!(path = %path.display(), line = i + 1, "a token shorter than 16 characters can be guessed");
            }
            tokens.entries.push((hash, scope));
        }
        if tokens.entries.is_empty() {
            return Err(TokensError::Empty { path: path.to_path_buf() });
        }
        Ok(tokens)
    }

    /// The token `presented` is, and its scope; compares with every token in constant
    /// time.
    pub fn find(&self, presented: &str) -> Option<(TokenId, Scope)> {
        let presented = hash(presented);
        let mut found = subtle::Choice::from(0);
        let mut index = 0u64;
        for (i, (hash, _)) in self.entries.iter().enumerate() {
            let equal = hash.ct_eq(&presented);
            index.conditional_assign(&(i as u64), equal);
            found |= equal;
        }
        let id = u64::from_le_bytes(presented[..8].try_into().expect("8 bytes"));
        bool::from(found).then(|| (id, self.entries[index as usize].1))
    }

    /// How many tokens there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn hash(token: &str) -> [u8; 32] {
    let mut out = [0; 32];
    out.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    out
}

/// The tokens of a file, read again when it changes.
#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    state: RwLock<(Arc<Tokens>, Stamp)>,
}

impl TokenFile {
    /// Reads the tokens of `path`.
    pub fn load(path: &Path) -> Result<TokenFile, TokensError> {
        let stamp = stamp(&[path]);
        let tokens = read(path)?;
        warn_if_readable_by_others(path);
        Ok(TokenFile { path: path.to_path_buf(), state: RwLock::new((Arc::new(tokens), stamp)) })
    }

    /// The current tokens.
    pub fn tokens(&self) -> Arc<Tokens> {
        self.state.read().expect("tokens lock").0.clone()
    }

    /// Reads the file again if it changed since the last read. A file that cannot be
    /// used revokes every token (it is logged); it may have been edited to revoke one.
    pub fn refresh(&self) {
        let now = stamp(&[&self.path]);
        if now == self.state.read().expect("tokens lock").1 {
            return;
        }
        let tokens = match read(&self.path) {
            Ok(tokens) => {
                tracing::info!(path = %self.path.display(), tokens = tokens.len(), "tokens file read again");
                tokens
            }
            Err(error) => {
                tracing::error!(%error, "tokens file unusable: every token is refused until it is fixed");
                Tokens::default()
            }
        };
        *self.state.write().expect("tokens lock") = (Arc::new(tokens), now);
    }
}

fn read(path: &Path) -> Result<Tokens, TokensError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| TokensError::Read { path: path.to_path_buf(), source })?;
    Tokens::parse(&text, path)
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(path = %path.display(), "the tokens file can be read by other users (chmod 600 it)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_format() {
        let path = Path::new("tokens");
        let text = "# tokens\n\nread  r-0123456789abcdef\nWRITE w-0123456789abcdef\n  admin a-0123456789abcdef  \n";
        let tokens = Tokens::parse(text, path).expect("parses");
        assert_eq!(tokens.len(), 3);
        let scope = |token| tokens.find(token).map(|(_, scope)| scope);
        assert_eq!(scope("r-0123456789abcdef"), Some(Scope::Read));
        assert_eq!(scope("w-0123456789abcdef"), Some(Scope::Write));
        assert_eq!(scope("a-0123456789abcdef"), Some(Scope::Admin));
        // A token keeps its identity when the file changes around it.
        let edited = Tokens::parse("admin x-0123456789abcdef\nwrite w-0123456789abcdef\n", path).expect("parses");
        assert_eq!(edited.find("w-0123456789abcdef"), tokens.find("w-0123456789abcdef"));
        assert_ne!(tokens.find("r-0123456789abcdef").map(|f| f.0), tokens.find("w-0123456789abcdef").map(|f| f.0));
        assert_eq!(tokens.find("a-0123456789abcde"), None);
        assert_eq!(tokens.find(""), None);

        for (bad, line) in [
            ("read", 1),
            ("read SECRET-1 SECRET-2", 1),
            ("# x\nsuper SECRET-3", 2),
            ("read SECRET-\u{e9}", 1),
            ("read SECRET-4\nadmin SECRET-4", 2),
        ] {
            let error = Tokens::parse(bad, path).unwrap_err();
            assert!(matches!(error, TokensError::Line { line: l, .. } if l == line), "{bad:?}: {error}");
            assert!(!error.to_string().contains("SECRET"), "{error} quotes the token");
        }
        assert!(matches!(Tokens::parse("# nothing\n", path), Err(TokensError::Empty { .. })));
    }

    #[test]
    fn routes_need_scopes() {
        let cases = [
            ("GET", "/healthz", Access::Open),
            ("GET", "/", Access::Open),
            ("POST", "/", Access::Open),
            ("GET", "/metrics", Access::Needs(Scope::Read)),
            ("GET", "/api/v1/jobs", Access::Needs(Scope::Read)),
            ("HEAD", "/api/v1/jobs/j", Access::Needs(Scope::Read)),
            ("GET", "/api/v1/jobs/j/outputs/o/subscribe", Access::Needs(Scope::Read)),
            ("POST", "/api/v1/jobs/j/inputs/i", Access::Needs(Scope::Write)),
            ("POST", "/api/v1/jobs/j/inputs/i/advance", Access::Needs(Scope::Write)),
            ("PUT", "/api/v1/jobs/j/inputs/i", Access::Needs(Scope::Admin)),
            ("POST", "/api/v1/jobs/j/inputs/i/advance/x", Access::Needs(Scope::Admin)),
            ("POST", "/api/v1/jobs", Access::Needs(Scope::Admin)),
            ("DELETE", "/api/v1/jobs/j", Access::Needs(Scope::Admin)),
            ("POST", "/api/v1/jobs/j/suspend", Access::Needs(Scope::Admin)),
            ("OPTIONS", "/api/v1/jobs", Access::Needs(Scope::Read)),
            ("GET", "/api/v1", Access::Needs(Scope::Read)),
            ("GET", "/api/v1x", Access::Needs(Scope::Read)),
            ("GET", "//api/v1/jobs", Access::Needs(Scope::Read)),
            ("DELETE", "/%61pi/v1/jobs/j", Access::Needs(Scope::Admin)),
            ("GET", "/favicon.ico", Access::Needs(Scope::Read)),
        ];
        for (method, path, expected) in cases {
            assert_eq!(access(&method.parse().expect("method"), path), expected, "{method} {path}");
        }
        assert!(takes_query_token(&Method::GET, "/api/v1/jobs/j/outputs/o/subscribe"));
        assert!(!takes_query_token(&Method::GET, "/api/v1/jobs/j/outputs/o"));
        assert!(!takes_query_token(&Method::POST, "/api/v1/jobs/j/outputs/o/subscribe"));
    }
}
