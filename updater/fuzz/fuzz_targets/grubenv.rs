//! grubenv blocks as a torn write or a damaged sector leaves them: parse, decide, write back.
#![no_main]
use cairn_updater::grubenv::GrubEnv;
use cairn_updater::slot::Slot;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Most inputs of any length fail the size check at once: also shape each into a block
    // (header, the input, '#' padding), so the parser proper sees them.
    let _ = GrubEnv::parse(data);
    let mut block = b"# GRUB Environment Block\n".to_vec();
    block.extend_from_slice(&data[..data.len().min(1024 - block.len())]);
    block.resize(1024, b'#');
    if let Ok(mut env) = GrubEnv::parse(&block) {
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
