"""Face quality measured on pixels and landmarks (OpenCV, numpy): the `QualityMeter` port's adapter."""
