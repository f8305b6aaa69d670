# Study radio: matching-pursuit explanations of a radio-map UNet.
