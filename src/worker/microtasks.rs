//! Rust futures woken through promise reactions rather than workerd's `queueMicrotask`.
//!
//! wasm-bindgen's executor (js-sys's `futures::queue`) schedules its task queue with the global
//! `queueMicrotask` when there is one, and with `Promise.resolve().then(f)` otherwise; it looks
//! once, when the queue is first used. workerd's `queueMicrotask` is C++: each call wraps the
//! callback in a new function (`v8::Function::New`), whose objects V8 puts in its old space and
//! frees only at a major GC. A copy wakes the queue for every socket read and every channel
//! hand-off. Sampled with V8's heap profiler (objects that outlived the young generation), those
//! wrappers were a third of the old-space garbage of a 300k-row copy. A promise reaction on one
//! resolved promise, with the executor's one closure, leaves only young garbage.

use wasm_bindgen::prelude::*;

#[wasm_bindgen(inline_js = r#"
// queueMicrotask lives on the global scope's prototype: an own property shadows it, and
// deleting that property brings it back for everyone else.
export function hideQueueMicrotask() {
  if (Object.prototype.hasOwnProperty.call(globalThis, "queueMicrotask")) return false;
  globalThis.queueMicrotask = undefined;
  return true;
}
export function restoreQueueMicrotask() { delete globalThis.queueMicrotask; }
"#)]
extern "C" {
    #[wasm_bindgen(js_name = hideQueueMicrotask, catch)]
    fn hide_queue_microtask() -> Result<bool, JsValue>;
    #[wasm_bindgen(js_name = restoreQueueMicrotask, catch)]
    fn restore_queue_microtask() -> Result<(), JsValue>;
}

/// Makes wasm-bindgen's executor schedule through promise reactions. Call it before anything
/// spawns or awaits a future: the executor's queue is made on first use and keeps its choice.
/// If the global cannot be hidden, the executor keeps `queueMicrotask`, which is only slower.
pub fn schedule_futures_with_promises() {
    if let Ok(true) = hide_queue_microtask() {
        // Spawning makes the queue, which reads the global now.
        wasm_bindgen_futures::spawn_local(async {});
        let _ = restore_queue_microtask();
    }
}
