//! The one conversion of a thrown JS value into text for this crate's errors.

use wasm_bindgen::{JsCast, JsValue};

/// An `Error`'s message, a thrown string as it is, anything else as its debug form.
pub fn error_message(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message())).or_else(|| e.as_string()).unwrap_or_else(|| format!("{e:?}"))
}
