//! Accounts: a user named in `/etc/passwd` and `/etc/group`, or given as
//! `:UID:GID`; and the privilege drop chain-loaders perform.
//!
//! The files are parsed directly: static musl binaries have no NSS, and a
//! container's accounts are exactly these two files.

use std::ffi::OsStr;
use std::path::Path;

use nix::unistd::{Gid, Uid, setgid, setgroups, setuid};

use crate::error::{Error, Result};
use crate::fs::{Dir, Owner};

/// A resolved account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// As given: a login name, or `:UID:GID`.
    pub name: String,
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
    /// Supplementary groups, the primary group first.
    pub groups: Vec<u32>,
}

impl Owner {
    /// Who owns what the caller creates for `account`: root chowns to it,
    /// the account itself needs not, anyone else is refused (the reason).
    pub fn for_caller(account: &Account) -> std::result::Result<Owner, String> {
        let euid = nix::unistd::geteuid().as_raw();
        let (uid, gid) = (account.uid, account.gid);
        match euid {
            0 => Ok(Owner::Chown { uid, gid }),
            e if e == uid => Ok(Owner::Caller { uid, gid }),
            e => Err(format!("must run as root or as {} (uid {uid}), not as uid {e}", account.name)),
        }
    }
}

/// Where the account database lives (tests point it elsewhere).
#[derive(Debug, Clone, Copy)]
pub struct Database<'a> {
    /// The directory holding `passwd` and `group` (`/etc`).
    pub etc: &'a Path,
}

impl Default for Database<'_> {
    fn default() -> Self {
        Database { etc: Path::new("/etc") }
    }
}

/// Resolves `spec`, a login name or `:UID:GID`.
pub fn resolve(spec: &str) -> Result<Account> {
    resolve_in(spec, Database::default())
}

/// [`resolve`] against another `passwd`/`group` (tests, the doctor).
fn resolve_in(spec: &str, db: Database<'_>) -> Result<Account> {
    if let Some(ids) = spec.strip_prefix(':') {
        return numeric(spec, ids);
    }
    let etc = Dir::open_trusted(db.etc)?;
    const CAP: u64 = 16 << 20;
    let passwd = etc.read_file(OsStr::new("passwd"), CAP)?.unwrap_or_default();
    let group = etc.read_file(OsStr::new("group"), CAP)?.unwrap_or_default();
    let (uid, gid) = find_passwd(&String::from_utf8_lossy(&passwd), spec)
        .ok_or_else(|| Error::refused("resolve user", Path::new(spec), "no such user in /etc/passwd"))?;
    let mut groups = vec![gid];
    for g in member_of(&String::from_utf8_lossy(&group), spec) {
        if !groups.contains(&g) {
            groups.push(g);
        }
    }
    Ok(Account { name: spec.to_string(), uid, gid, groups })
}

fn numeric(spec: &str, ids: &str) -> Result<Account> {
    let bad = || Error::refused("resolve user", Path::new(spec), "expected :UID:GID with decimal ids");
    let (u, g) = ids.split_once(':').ok_or_else(bad)?;
    let id = |s: &str| -> Option<u32> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    let (uid, gid) = (id(u).ok_or_else(bad)?, id(g).ok_or_else(bad)?);
    Ok(Account { name: spec.to_string(), uid, gid, groups: vec![gid] })
}

/// `name:pw:uid:gid:…` → (uid, gid) of the first line for `name`.
fn find_passwd(text: &str, name: &str) -> Option<(u32, u32)> {
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 || f[0] != name {
            return None;
        }
        Some((f[2].parse().ok()?, f[3].parse().ok()?))
    })
}

/// Gids of the groups whose member list (`name:pw:gid:a,b,c`) names `user`.
fn member_of(text: &str, user: &str) -> Vec<u32> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 4 || !f[3].split(',').any(|m| m == user) {
                return None;
            }
            f[2].parse().ok()
        })
        .collect()
}

/// Becomes `account` for good: supplementary groups, then gid, then uid
/// (in any other order a step would lack the privilege it needs).
pub fn drop_privileges(account: &Account) -> Result<()> {
    let groups: Vec<Gid> = account.groups.iter().map(|g| Gid::from_raw(*g)).collect();
    let who = Path::new(&account.name);
    setgroups(&groups).map_err(|e| Error::sys("set supplementary groups for", who, e))?;
    setgid(Gid::from_raw(account.gid)).map_err(|e| Error::sys("set gid for", who, e))?;
    setuid(Uid::from_raw(account.uid)).map_err(|e| Error::sys("set uid for", who, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nbroken line\nhermes:x:10000:10000::/opt/data:/bin/sh\n";
    const GROUP: &str = "root:x:0:\nhermes:x:10000:\naudio:x:29:pulse,hermes\nvideo:x:44:hermesx\n";

    #[test]
    fn names_resolve_with_supplementary_groups() {
        let d = std::env::temp_dir().join(format!("hermes-s6-user-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("passwd"), PASSWD).unwrap();
        std::fs::write(d.join("group"), GROUP).unwrap();
        let a = resolve_in("hermes", Database { etc: &d }).unwrap();
        assert_eq!((a.uid, a.gid, a.groups.clone()), (10000, 10000, vec![10000, 29]));
        let e = resolve_in("nobody-here", Database { etc: &d }).unwrap_err();
        assert_eq!(e.exit_code(), 100);
        assert_eq!(e.to_string(), "unable to resolve user nobody-here: no such user in /etc/passwd");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn numeric_accounts_need_both_ids() {
        let a = resolve(":10000:20000").unwrap();
        assert_eq!((a.uid, a.gid, a.groups), (10000, 20000, vec![20000]));
        for bad in [":", ":1", ":1:", "::1", ":a:1", ":1:-2", ":1:2:3"] {
            assert!(resolve(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwd_parsing_ignores_malformed_lines() {
        assert_eq!(find_passwd(PASSWD, "hermes"), Some((10000, 10000)));
        assert_eq!(find_passwd(PASSWD, "broken line"), None);
        assert_eq!(member_of(GROUP, "hermes"), vec![29]);
    }
}
