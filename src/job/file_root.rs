//! The directory file sources may read: `--file-root`.
//!
//! A file source names a path; a job spec sent over the API may only name one below the
//! file root, so that a client cannot make the server read (and show, as dead letters)
//! any file it can read. A path is resolved against the root when relative, must not
//! contain `..`, and must still lie below the root once every symlink is followed.

use std::path::{Component, Path, PathBuf};

/// A canonical directory below which file sources read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRoot {
    dir: PathBuf,
}

/// Why a path cannot be read as a file source.
#[derive(Debug, thiserror::Error)]
pub enum FileRootError {
    /// The root itself is unusable.
    #[error("file root {}: {problem}", dir.display())]
    Root {
        /// The root as given.
        dir: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The path has a `..` component.
    #[error("`{}` must not contain `..`", path.display())]
    Parent {
        /// The path as given.
        path: PathBuf,
    },
    /// The path, symlinks followed, is not below the root.
    #[error("`{}` is outside the file root {}{}", path.display(), root.display(), if *through_link { " (through a symlink)" } else { "" })]
    Outside {
        /// The path as given.
        path: PathBuf,
        /// The root.
        root: PathBuf,
        /// The path is below the root as written, but a symlink leads out of it.
        through_link: bool,
    },
    /// The path cannot be read.
    #[error("cannot read `{}`: {source}", path.display())]
    Unreadable {
        /// The path as given.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The path is not a regular file.
    #[error("`{}` is not a file", path.display())]
    NotAFile {
        /// The path as given.
        path: PathBuf,
    },
}

impl FileRoot {
    /// The root at `dir`, which must be an existing directory.
    pub fn new(dir: &Path) -> Result<FileRoot, FileRootError> {
        let root = |problem: String| FileRootError::Root { dir: dir.to_path_buf(), problem };
        let canonical = dir.canonicalize().map_err(|e| root(e.to_string()))?;
        if !canonical.is_dir() {
            return Err(root("is not a directory".into()));
        }
        Ok(FileRoot { dir: canonical })
    }

    /// The root directory (canonical).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The canonical path of the file `path` names (relative paths are relative to the
    /// root), if it is a readable file below the root.
    pub fn resolve(&self, path: &Path) -> Result<PathBuf, FileRootError> {
        if path.components().any(|c| c == Component::ParentDir) {
            return Err(FileRootError::Parent { path: path.to_path_buf() });
        }
        let joined = if path.is_absolute() { path.to_path_buf() } else { self.dir.join(path) };
        let canonical =
            joined.canonicalize().map_err(|source| FileRootError::Unreadable { path: path.to_path_buf(), source })?;
        if !canonical.starts_with(&self.dir) {
            let through_link = joined.starts_with(&self.dir);
            return Err(FileRootError::Outside { path: path.to_path_buf(), root: self.dir.clone(), through_link });
        }
        if !canonical.is_file() {
            return Err(FileRootError::NotAFile { path: path.to_path_buf() });
        }
        Ok(canonical)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_below_the_root() {
        let base = tempfile::tempdir().expect("temp dir");
        let root_dir = base.path().join("root");
        std::fs::create_dir_all(root_dir.join("sub")).expect("dirs");
        std::fs::write(root_dir.join("sub/in.ndjson"), "{}\n").expect("file");
        std::fs::write(base.path().join("out.ndjson"), "{}\n").expect("file");
        std::os::unix::fs::symlink(base.path().join("out.ndjson"), root_dir.join("leak")).expect("symlink");
        std::os::unix::fs::symlink(root_dir.join("sub/in.ndjson"), root_dir.join("alias")).expect("symlink");
        let root = FileRoot::new(&root_dir).expect("root");

        let inside = root.dir().join("sub/in.ndjson");
        assert_eq!(root.resolve(Path::new("sub/in.ndjson")).expect("relative"), inside);
        assert_eq!(root.resolve(&root_dir.join("sub/in.ndjson")).expect("absolute"), inside);
        assert_eq!(root.resolve(Path::new("alias")).expect("a link inside"), inside);
        assert!(matches!(root.resolve(Path::new("../out.ndjson")), Err(FileRootError::Parent { .. })));
        assert!(matches!(root.resolve(Path::new("sub/../sub/in.ndjson")), Err(FileRootError::Parent { .. })));
        let leak = root.resolve(Path::new("leak")).unwrap_err();
        assert!(matches!(leak, FileRootError::Outside { through_link: true, .. }), "{leak}");
        let outside = root.resolve(&base.path().join("out.ndjson")).unwrap_err();
        assert!(matches!(outside, FileRootError::Outside { through_link: false, .. }), "{outside}");
        assert!(matches!(root.resolve(Path::new("/etc/passwd")), Err(FileRootError::Outside { .. })));
        assert!(matches!(root.resolve(Path::new("missing")), Err(FileRootError::Unreadable { .. })));
        assert!(matches!(root.resolve(Path::new("sub")), Err(FileRootError::NotAFile { .. })));
        assert!(FileRoot::new(&root_dir.join("sub/in.ndjson")).is_err());
        assert!(FileRoot::new(&base.path().join("nope")).is_err());
    }
}
