// Placeholder until the CNI/CLI owner lands main.
int main() { return 0; }
