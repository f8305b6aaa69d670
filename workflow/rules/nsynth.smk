# Study nsynth: rate-distortion explanations of an instrument classifier with an inpainting GAN.
