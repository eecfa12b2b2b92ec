//! A tenant's durable record: everything persistence keeps about it except
//! its data and policy (identity, profile, limits, state, creation time, the
//! password as its salted hash), and how to restore it.

use std::sync::Arc;

use ferrite_policy_abi::{DecodeError, Reader, Writer};

use super::TenantError;
use super::lifecycle::TenantState;
use super::manager::TenantManager;
use super::tenant::{PasswordHash, Tenant};
use super::tier::{TenantLimits, TenantTier};

#[derive(Debug, Clone, PartialEq)]
pub struct TenantImage {
    pub id: String,
    pub name: String,
    pub tier: String,
    pub eviction: String,
    pub limits: TenantLimits,
    pub state: TenantState,
    pub created_at: u64,
    pub password: Option<([u8; 16], [u8; 32])>,
}

impl TenantImage {
    pub fn of(t: &Tenant) -> TenantImage {
        let p = t.profile();
        TenantImage {
            id: t.id().to_string(),
            name: p.name,
            tier: p.tier.name().to_string(),
            eviction: p.eviction,
            limits: t.limits(),
            state: t.state(),
            created_at: t.created_at(),
            password: p.password.map(|h| h.parts()),
        }
    }

    pub fn encode(&self, w: &mut Writer) {
        w.str(&self.id).str(&self.name).str(&self.tier).str(&self.eviction);
        let l = &self.limits;
        w.u64(l.memory_bytes).u64(l.max_keys).u64(l.ops_per_second).u64(l.max_connections).u64(l.max_databases);
        w.u8(self.state as u8).u64(self.created_at);
        match &self.password {
            Some((salt, hash)) => w.u8(1).raw(salt).raw(hash),
            None => w.u8(0),
        };
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<TenantImage, DecodeError> {
        Ok(TenantImage {
            id: r.string()?,
            name: r.string()?,
            tier: r.string()?,
            eviction: r.string()?,
            limits: TenantLimits {
                memory_bytes: r.u64()?,
                max_keys: r.u64()?,
                ops_per_second: r.u64()?,
                max_connections: r.u64()?,
                max_databases: r.u64()?,
            },
            state: TenantState::from_u8(r.u8()?),
            created_at: r.u64()?,
            password: match r.u8()? {
                0 => None,
                _ => Some((r.array()?, r.array()?)),
            },
        })
    }
}

impl TenantManager {
    /// Creates the tenant an image describes, or brings an existing one to it.
    pub fn restore(&self, img: &TenantImage) -> Result<Arc<Tenant>, TenantError> {
        let tier = TenantTier::parse(&img.tier);
        let t = match self.get_tenant(&img.id) {
            Ok(t) => t,
            Err(_) => self.create_with(&img.id, Some(&img.name), tier.clone(), img.limits, None, &img.eviction)?,
        };
        t.set_limits(img.limits);
        t.update_profile(|p| {
            p.name = img.name.clone();
            p.tier = tier;
            p.eviction = img.eviction.clone();
            p.password = img.password.map(|(salt, hash)| PasswordHash::from_parts(salt, hash));
        });
        t.restore(img.created_at, img.state);
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenancy::TenantConfig;

    #[test]
    fn an_image_restores_every_field_and_the_password_still_verifies() {
        let m = TenantManager::new(TenantConfig::default());
        let limits = TenantLimits { memory_bytes: 1, max_keys: 2, ops_per_second: 3, max_connections: 4, max_databases: 5 };
        let t = m.create_with("acme", Some("Acme"), TenantTier::Pro, limits, Some(b"pw"), "allkeys-lru").unwrap();
        t.set_state(TenantState::Suspended).unwrap();
        let img = TenantImage::of(&t);
        let mut w = Writer::default();
        img.encode(&mut w);
        let back = TenantImage::decode(&mut Reader::new(&w.buf)).unwrap();
        assert_eq!(back, img);
        let other = TenantManager::new(TenantConfig::default());
        let r = other.restore(&back).unwrap();
        assert_eq!(TenantImage::of(&r), img);
        assert!(r.check_password(b"pw") && !r.check_password(b"nope"));
    }
}
