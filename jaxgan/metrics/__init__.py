"""FID, KID and Inception Score with the standard FID Inception-v3."""
