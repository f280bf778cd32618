"""innsikt: themes, taxonomy mapping and quotes from transcribed Norwegian workshop cards."""
