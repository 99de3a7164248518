//! User and group names from /etc/passwd and /etc/group. PID 1 is a static binary without
//! NSS; on a Cairn node these two files are the only user database.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub uid: u32,
    pub gid: u32,
    pub home: String,
}

/// Looks up a user by name or number in passwd text.
pub fn user(passwd: &str, name: &str) -> Option<User> {
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 7 || (f[0] != name && f[2] != name) {
            return None;
        }
        Some(User { uid: f[2].parse().ok()?, gid: f[3].parse().ok()?, home: f[5].to_owned() })
    })
    .or_else(|| name.parse().ok().map(|uid| User { uid, gid: uid, home: "/".into() }))
}

/// A group id by name or number.
pub fn group(group_text: &str, name: &str) -> Option<u32> {
    group_text
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 3 && (f[0] == name || f[2] == name)).then(|| f[2].parse().ok()).flatten()
        })
        .or_else(|| name.parse().ok())
}

/// The supplementary groups a user is listed in.
pub fn groups_of(group_text: &str, user_name: &str) -> Vec<u32> {
    group_text
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.len() >= 4 && f[3].split(',').any(|m| m == user_name)).then(|| f[2].parse().ok()).flatten()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nmessagebus:x:100:101::/nonexistent:/usr/sbin/nologin\n";
    const GROUP: &str = "root:x:0:\ndocker:x:998:messagebus,alice\noperator:x:37:\n";

    #[test]
    fn looks_up_users_and_groups() {
        assert_eq!(user(PASSWD, "messagebus"), Some(User { uid: 100, gid: 101, home: "/nonexistent".into() }));
        assert_eq!(user(PASSWD, "0").map(|u| u.uid), Some(0));
        assert_eq!(user(PASSWD, "4242").map(|u| u.gid), Some(4242));
        assert_eq!(user(PASSWD, "nobody-here"), None);
        assert_eq!(group(GROUP, "operator"), Some(37));
        assert_eq!(group(GROUP, "nosuch"), None);
        assert_eq!(groups_of(GROUP, "messagebus"), [998]);
    }
}
