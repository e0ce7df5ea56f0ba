# Convenience recipes; each mirrors a plain cargo command (just is optional).

# Run one scenario: just run scenarios/tutorial/01-first-spin-lock.sim
run FILE *ARGS:
    cargo run --release -p sim-runner -- run {{FILE}} {{ARGS}}

# Every scenario against its expectations
scenarios:
    cargo run --release -p sim-runner -- test scenarios/

# The public conformance scenarios
conformance:
    cargo run --release -p sim-runner -- test ../shared/conformance/

test:
    cargo test --workspace

# loom models of the standalone locks
loom:
    RUSTFLAGS="--cfg loom" cargo test --release -p spinlocks --test loom --target-dir target/loom

bench:
    cargo bench -p spinlocks --bench contention
    cargo bench -p verifier --bench lock_order

lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

ci:
    bash .ci/run
