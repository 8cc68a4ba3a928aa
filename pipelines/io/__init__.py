"""What the prediction commands write: tables (resumable, locked, atomic), tracks (bedGraph,
bigWig), segments (GFF3, BED) and the error file."""
