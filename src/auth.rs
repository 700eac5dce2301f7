//! Bearer-token roles. Comparison is constant-time in the token's content so that response
//! timing tells nothing about how much of a guess was right.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Client,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Client => "client",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "client" => Some(Role::Client),
            _ => None,
        }
    }
}

/// Compares all bytes regardless of where they first differ. Lengths are not secret.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The role an `Authorization` header grants, if any. An unset or empty token grants nothing.
pub fn role_for(header: Option<&str>, admin_token: Option<&str>, client_token: Option<&str>) -> Option<Role> {
    let given = header?.strip_prefix("Bearer ")?.trim();
    if given.is_empty() {
        return None;
    }
    let matches = |t: Option<&str>| t.is_some_and(|t| !t.is_empty() && constant_time_eq(given.as_bytes(), t.as_bytes()));
    // Both comparisons always run, so timing does not reveal which token matched.
    let (is_admin, is_client) = (matches(admin_token), matches(client_token));
    if is_admin {
        Some(Role::Admin)
    } else if is_client {
        Some(Role::Client)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles() {
        let r = |h| role_for(h, Some("adm"), Some("cli"));
        assert_eq!(r(Some("Bearer adm")), Some(Role::Admin));
        assert_eq!(r(Some("Bearer cli")), Some(Role::Client));
        assert_eq!(r(Some("Bearer ad")), None);
        assert_eq!(r(Some("adm")), None);
        assert_eq!(r(Some("Bearer ")), None);
        assert_eq!(r(None), None);
        assert_eq!(role_for(Some("Bearer "), Some(""), None), None);
        assert_eq!(role_for(Some("Bearer x"), None, None), None);
    }
}
