"""Image input, registration to MNI-152 and the 18-box patch store."""
