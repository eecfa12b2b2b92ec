//! Tenant states and the transitions between them.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum TenantState {
    /// Normal operation.
    Active = 0,
    /// No data commands at all until re-activated.
    Suspended = 1,
    /// Being moved: readable, not writable.
    Migrating = 2,
    /// Cleanup in progress: nothing is served.
    Deleting = 3,
    /// Historical: readable, not writable.
    Archived = 4,
}

impl TenantState {
    pub fn name(self) -> &'static str {
        match self {
            TenantState::Active => "active",
            TenantState::Suspended => "suspended",
            TenantState::Migrating => "migrating",
            TenantState::Deleting => "deleting",
            TenantState::Archived => "archived",
        }
    }

    pub fn parse(s: &str) -> Option<TenantState> {
        Some(match s.to_ascii_lowercase().as_str() {
            "active" => TenantState::Active,
            "suspended" => TenantState::Suspended,
            "migrating" => TenantState::Migrating,
            "deleting" => TenantState::Deleting,
            "archived" => TenantState::Archived,
            _ => return None,
        })
    }

    pub fn from_u8(v: u8) -> TenantState {
        match v {
            0 => TenantState::Active,
            1 => TenantState::Suspended,
            2 => TenantState::Migrating,
            3 => TenantState::Deleting,
            _ => TenantState::Archived,
        }
    }

    /// Whether `self -> to` is allowed. Deleting is terminal; everything
    /// else can be re-activated; suspension and archiving start from active
    /// (or each other), migration only from active.
    pub fn can_become(self, to: TenantState) -> bool {
        use TenantState::*;
        match (self, to) {
            (Deleting, _) => false,
            (_, Deleting) => true,
            (a, b) if a == b => false,
            (_, Active) => true,
            (Active, Suspended | Migrating | Archived) => true,
            (Suspended, Archived) | (Archived, Suspended) => true,
            _ => false,
        }
    }
}

impl fmt::Display for TenantState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::TenantState::*;

    #[test]
    fn transitions() {
        assert!(Active.can_become(Suspended));
        assert!(Suspended.can_become(Active));
        assert!(Active.can_become(Migrating));
        assert!(!Suspended.can_become(Migrating));
        assert!(!Deleting.can_become(Active));
        assert!(Archived.can_become(Active));
        assert!(!Active.can_become(Active));
    }
}
