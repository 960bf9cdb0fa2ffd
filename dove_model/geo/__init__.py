"""Geospatial archives: scenes (GeoTIFFs, STAC catalogs and APIs) tiled into georeferenced
chips that form a canonical dataset (``dove archive ingest``, docs/data.md)."""
