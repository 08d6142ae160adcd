//! Arbitrary UTF-8 as one rule file, then as two files sharing names: checking must
//! not panic, overflow the stack or hang; every diagnostic must point inside its file
//! on a char boundary and render the same alone and in a batch; `load` must agree
//! with `check_sources`.
#![no_main]

use dsl::Source;
use libfuzzer_sys::fuzz_target;

fn run(sources: &[Source]) {
    let checked = dsl::check::check_sources(sources);
    let all = dsl::diag::render_all(&checked.diagnostics, sources);
    for (d, rendered_in_batch) in checked.diagnostics.iter().zip(&all) {
        let text = &sources[d.span.file].text;
        assert!(
            d.span.start <= d.span.end && d.span.end <= text.len(),
            "{d:?}"
        );
        assert!(text.is_char_boundary(d.span.start) && text.is_char_boundary(d.span.end));
        let loc = d.location(sources);
        assert!(loc.line >= 1 && loc.column >= 1);
        let rendered = d.render(sources);
        assert!(rendered.contains(d.code));
        assert_eq!(&rendered, rendered_in_batch);
    }
    let errors = checked.diagnostics.iter().any(|d| d.is_error());
    match dsl::load(sources) {
        Ok(_) => assert!(!errors),
        Err(diags) => assert!(errors && !diags.is_empty()),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    run(&[Source::new("fuzz.rules", text)]);
    // The same text split in two files: names resolve across files.
    let mut cut = text.len() / 2;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    run(&[
        Source::new("a.rules", &text[..cut]),
        Source::new("b.rules", &text[cut..]),
    ]);
});
