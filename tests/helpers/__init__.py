"""What several test files share: workflow runners, tiny audio models, local remote servers."""
