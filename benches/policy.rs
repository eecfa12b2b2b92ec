//! What a policy decision and an upload cost: a 16-candidate eviction
//! decision through the example WASM policy against the native LRU choice
//! over the same candidates, a quota decision, and compiling plus
//! instantiating a 100 KB module (upload-to-active, minus the network).
//!
//! `cargo bench --bench policy`

#[path = "../tests/common/policies.rs"]
mod policies;

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use ferrite::policy::slot::Prepared;
use ferrite::policy::{PolicyConfig, PolicyModule};
use ferrite::store::keyspace::Sample;
use ferrite::store::value::ValueType;
use ferrite::tenancy::eviction::Policy;
use ferrite::tenancy::hooks::{self, CommandClass, Resource};
use ferrite::tenancy::{Tenant, TenantConfig, TenantManager};

fn tenant_with(manager: &TenantManager, id: &str, wasm: &[u8], config: &str) -> Arc<Tenant> {
    let cfg = PolicyConfig::default();
    let t = manager.create_tenant(id, None, None).unwrap();
    let module = PolicyModule::compile(wasm, config.as_bytes(), &cfg).unwrap();
    t.install_policy(Prepared::new(Arc::new(module), id, &cfg).unwrap(), 0, 2);
    t
}

fn samples() -> Vec<(usize, Sample)> {
    (0..16)
        .map(|i| {
            let key = if i % 4 == 0 { format!("session:{i}") } else { format!("cache:object:{i}") };
            let s = Sample {
                key: key.into_bytes(),
                kind: ValueType::String,
                bytes: 100 + i * 7,
                idle_secs: (i * 13 % 17) as u64,
                lfu: 5,
                expire_at: None,
            };
            (0, s)
        })
        .collect()
}

fn eviction_decision(c: &mut Criterion) {
    let manager = TenantManager::new(TenantConfig::default());
    let t = tenant_with(&manager, "shop", &policies::wasm("protect-prefix"), "protect=session:");
    let cfg = PolicyConfig::default();
    let samples = samples();
    let mut g = c.benchmark_group("eviction_decision_16_candidates");
    g.bench_function("native_lru", |b| {
        let lru = Policy::Lru { volatile: false };
        b.iter(|| black_box(&samples).iter().enumerate().max_by_key(|(_, (_, s))| lru.score(s)).map(|(i, _)| i))
    });
    g.bench_function("host_encode_only", |b| {
        let mut w = ferrite_policy_abi::Writer::default();
        b.iter(|| {
            w.buf.clear();
            hooks::evict_input(&mut w, &t, black_box(&samples), 0, 0)
        })
    });
    g.bench_function("wasm_protect_prefix", |b| b.iter(|| hooks::choose_victims(&t, &cfg, black_box(&samples), 0, 0).expect("a decision")));
    g.finish();
    let c = t.policy.info().counters;
    println!("wasm eviction: {} calls, {} fuel per call, {} fallbacks", c.calls, c.fuel_used / c.calls.max(1), c.fallbacks());
}

fn quota_decision(c: &mut Criterion) {
    let manager = TenantManager::new(TenantConfig::default());
    let t = tenant_with(&manager, "acme", &policies::wasm("burst-quota"), "tenants=acme; overage_percent=50; burst_seconds=60");
    let cfg = PolicyConfig::default();
    c.bench_function("quota_decision_wasm_burst", |b| b.iter(|| hooks::quota(&t, &cfg, "set", CommandClass::Write, Resource::Memory)));
}

fn upload(c: &mut Criterion) {
    let module = policies::synthetic(100_000);
    let cfg = PolicyConfig::default();
    let mut g = c.benchmark_group("upload");
    g.sample_size(10);
    g.bench_function(format!("compile_and_instantiate_{}_bytes", module.len()), |b| {
        b.iter(|| {
            let m = PolicyModule::compile(black_box(&module), b"", &cfg).unwrap();
            Prepared::new(Arc::new(m), "t", &cfg).unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, eviction_decision, quota_decision, upload);
criterion_main!(benches);
