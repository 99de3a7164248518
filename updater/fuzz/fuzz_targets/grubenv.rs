//! grubenv blocks as a torn write or a damaged sector leaves them: parse, decide, write back.
#![no_main]
use cairn_updater::grubenv::GrubEnv;
use cairn_updater::slot::Slot;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(mut env) = GrubEnv::parse(data) {
        let _ = env.order();
        let _ = env.next_boot();
        for s in Slot::ALL {
            let _ = env.failures(s);
            let _ = env.is_on_trial(s);
        }
        if let Ok(block) = env.to_block() {
            let back = GrubEnv::parse(&block).expect("a block we wrote parses");
            assert_eq!(back.to_block().ok(), Some(block));
        }
        env.set_primary(Slot::B);
        let _ = env.to_block();
    }
});
