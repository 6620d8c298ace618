//! Reports of analysis results: table, JSON, JUnit, GitHub annotations, SVG, HTML.
