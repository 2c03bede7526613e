"""Image input: decoding with OpenCV, and the header checks that run before a pixel is decoded."""
