# Study vocal: activation maximisation of a singing-voice detector through a DCGAN.
