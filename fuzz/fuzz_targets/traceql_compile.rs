//! Feeds arbitrary UTF-8 to the whole TraceQL front end (lex, parse, shape, validate) and, for
//! every query it accepts, checks the printer's round trip. Any panic or a round trip that
//! changes the query is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(query) = tracefusion::traceql::compile(text) else {
        return;
    };
    let printed = query.to_string();
    let reparsed = tracefusion::traceql::compile(&printed)
        .unwrap_or_else(|e| panic!("canonical form {printed:?} of {text:?} does not compile: {e}"));
    assert_eq!(query, reparsed, "round trip changed {text:?} (printed {printed:?})");
});
